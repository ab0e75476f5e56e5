"""Plotly charts that take new data in place: the Train page's live curves.

st.plotly_chart derives a chart's identity from its figure, so a chart whose data change on every refresh is
remounted every time: the user's zoom is lost each second, the chart blinks, and the browser redraws it from
scratch (~80 ms of CPU per refresh here, taken from the training on a 2-core machine). This component keeps one
Plotly instance per chart and hands it each new figure through Plotly.react, which honours layout.uirevision.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly
import plotly.io
import plotly.offline
from plotly import graph_objects as go
from streamlit.components import v1 as components

PAGE = Path(__file__).with_name("live_chart.html")


def served_folder() -> Path:
    """The component's page beside plotly.js (Streamlit serves a component's files only from its own folder),
    built once per version of the page and of plotly, in the temp folder."""
    page = PAGE.read_bytes()
    stamp = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"digitlab-live-chart-{stamp}"
    if not (folder / "index.html").is_file():
        staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}-", dir=folder.parent))
        (staging / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
        (staging / "index.html").write_bytes(page)
        try:
            staging.rename(folder)
        except OSError:  # another server process built it first
            shutil.rmtree(staging, ignore_errors=True)
    return folder


_component = components.declare_component("live_charts", path=str(served_folder()))


def live_charts(rows: Sequence[Mapping[str, go.Figure]], key: str) -> None:
    """Draw each row's figures side by side (a narrow page stacks them), all in one frame; on later runs with the
    same ``key``, update each chart, known by its name in ``rows``, in place."""
    names = [list(row) for row in rows]
    figures = {name: plotly.io.to_json(figure, validate=False) for row in rows for name, figure in row.items()}
    if len(figures) != sum(map(len, names)):
        raise ValueError(f"chart names must be unique across rows: {names}")
    _component(rows=names, figures=figures, key=key, default=None)
