"""What every page of the dashboard does first: the app's navigation, Streamlit settings, and the browser's prefetch
of the chart code."""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st
import streamlit.config

APP_SCRIPT = Path(__file__).resolve().parents[3] / "app.py"
STREAMLIT_SCRIPTS = Path(st.__file__).parent / "static" / "static" / "js"

# Streamlit runs a full gc.collect(2) after every script run. With torch and plotly loaded that takes ~100 ms of a
# core each time, taken from a training on a 2-core machine. Python's own generational collector still runs; it is
# the forced full pass per run that goes.
streamlit.config.set_option("runner.postScriptGC", False)


def use_app_navigation() -> None:
    """Call first in every page.

    Until app.py's st.navigation has run once in a process, Streamlit treats the pages/ folder beside app.py as an
    old-style multipage app: a first visit straight to /train runs that page alone, without the app's layout and
    sidebar (AppTest does this on every run). Then run app.py here, in this same script run, so that its
    navigation takes over and runs this page (widget clicks of this run included), and stop this outer copy.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP_SCRIPT), run_name="__main__")
        st.stop()


@st.cache_resource(show_spinner=False)
def chart_code_file() -> str | None:
    """The file name of Streamlit's browser code for st.plotly_chart (4.7 MB, plotly.js inside), or None if this
    Streamlit build names its files otherwise."""
    found = sorted(STREAMLIT_SCRIPTS.glob("PlotlyChart.*.js"))
    return found[0].name if len(found) == 1 else None


def prefetch_chart_code() -> None:
    """Have the browser load and run st.plotly_chart's code while it is idle, once per page load.

    The browser fetches that code the first time a page draws a Plotly chart in the page itself, which delays the
    first visit to Compare or Errors. Fetched ahead, by the same URL that Streamlit's own code imports it from, it is
    the same module, there and ready. Anything amiss does nothing.
    """
    name = chart_code_file()
    if name is None:
        return
    st.html(f"""<script type="module">
if (!window.digitlabChartCode) {{
  window.digitlabChartCode = true;
  const app = document.querySelector('script[src*="/static/js/index."]');
  const later = window.requestIdleCallback || (load => setTimeout(load, 1000));
  if (app) later(() => import(new URL("{name}", app.src).href).catch(() => {{}}));
}}
</script>""", unsafe_allow_javascript=True)
