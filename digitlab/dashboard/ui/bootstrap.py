"""What every page of the dashboard does first: the app's navigation, Streamlit settings, the server's import of the
pages' modules and the browser's prefetch of their elements' code."""

from __future__ import annotations

import importlib
import json
import pkgutil
import runpy
import threading
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


IMPORT_AFTER_S = 0.5  # after the server's first page run has begun: that page is drawn first
SEEN_HALF_IMPORTED = ("pandas", "pyarrow")  # modules that libraries find in sys.modules, not through an import


@st.cache_resource(show_spinner=False)
def import_pages_in_background() -> threading.Timer:
    """Import the modules the pages draw with, once per server, mostly on a thread of its own: pandas, pyarrow and
    jinja2 among them, 400 modules and 0.4-0.5 s of a core that a page's first visit in the server's life (Compare,
    Errors, Inside) would otherwise wait for.

    Plotly and narwhals look pandas and pyarrow up in sys.modules rather than import them, so a figure built while
    the thread was halfway through importing pandas failed ("partially initialized module 'pandas' has no attribute
    'Series'"). Those two are imported here, on the script's own thread, before the rest goes to the background:
    0.2 s, once per server."""
    for module in SEEN_HALF_IMPORTED:
        importlib.import_module(module)
    timer = threading.Timer(IMPORT_AFTER_S, _import_page_modules)
    timer.daemon = True
    timer.start()
    return timer


def _import_page_modules() -> None:
    """The dashboard's modules that use no Streamlit (all but ui/, whose components may only be declared from a
    script run)."""
    import digitlab.dashboard

    for module in pkgutil.walk_packages(digitlab.dashboard.__path__, "digitlab.dashboard."):
        if not module.name.startswith(__package__):
            importlib.import_module(module.name)


# Streamlit's browser code for the elements the pages draw, each a file that the browser fetches and compiles the
# first time a page of its tab draws one: PlotlyChart is 4.7 MB (plotly.js inside); the first visit to Compare
# fetched 47 files for its widgets and table.
PAGE_ELEMENT_CODE = ("PlotlyChart", "Multiselect", "Selectbox", "Checkbox", "Radio", "Slider", "Table",
                     "DownloadButton", "NumberInput", "TextInput")


@st.cache_resource(show_spinner=False)
def page_element_code_files() -> tuple[str, ...]:
    """The file names of PAGE_ELEMENT_CODE in this Streamlit build; those it names otherwise are left out."""
    found = (sorted(STREAMLIT_SCRIPTS.glob(f"{name}.*.js")) for name in PAGE_ELEMENT_CODE)
    return tuple(files[0].name for files in found if len(files) == 1)


def prefetch_page_element_code() -> None:
    """Have the browser load and run the code of the pages' elements while it is idle, once per page load, one file
    at a time, so that a page's first visit does not wait for it.

    Fetched ahead, by the same URL that Streamlit's own code imports it from, each is the same module, there and
    ready. Anything amiss does nothing.
    """
    names = page_element_code_files()
    if not names:
        return
    st.html(f"""<script type="module">
if (!window.digitlabElementCode) {{
  window.digitlabElementCode = true;
  const app = document.querySelector('script[src*="/static/js/index."]');
  const later = window.requestIdleCallback || (load => setTimeout(load, 1000));
  const names = {json.dumps(list(names))};
  const next = () => {{
    const name = names.shift();
    if (app && name) import(new URL(name, app.src).href).catch(() => {{}}).finally(() => later(next));
  }};
  later(next);
}}
</script>""", unsafe_allow_javascript=True)
