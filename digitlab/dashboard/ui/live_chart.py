"""Plotly charts that take new data in place: the Train page's live curves.

st.plotly_chart derives a chart's identity from its figure, so a chart whose data change on every refresh is
remounted every time: the user's zoom is lost each second, the chart blinks, and the browser redraws it from
scratch (~80 ms of CPU per refresh here, taken from the training on a 2-core machine). This component keeps one
Plotly instance per chart and hands it each new figure through Plotly.react, which honours layout.uirevision.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.io
import plotly.offline
from plotly import graph_objects as go
from streamlit.components import v1 as components

PAGE = Path(__file__).with_name("live_chart.html")


def served_folder() -> Path:
    """The component's page beside plotly.js (Streamlit serves a component's files only from its own folder), in a
    folder that this process creates afresh, readable by its user alone (mkdtemp: mode 0700, a random name).
    Component frames run their scripts with the page's origin, so the files must never come from a folder that
    someone else on the machine could have made first, as a fixed name in the shared temp folder could be."""
    folder = Path(tempfile.mkdtemp(prefix="digitlab-live-chart-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    (folder / "index.html").write_bytes(PAGE.read_bytes())
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
