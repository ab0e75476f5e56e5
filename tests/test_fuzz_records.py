"""Run records that are hostile, or whose weights go bad between listing and loading: every page renders, shows
their text as plain text, and says which run it could not load."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from digitlab.bench.strokes import render_digit
from digitlab.config import TrainConfig
from digitlab.dashboard.text import markdown_literal, plotly_literal, shorten
from digitlab.engine import train
from digitlab.recorder import record_training
from digitlab.store import RUN_FILE, WEIGHTS_FILE, RunStore, write_json
from tests.test_app import app_env, assert_clean, open_app  # noqa: F401 (app_env is a fixture)

TINY = TrainConfig(model="mlp", model_options={"hidden": [32]}, lr=0.01, batch_size=64, epochs=1, name="tiny valid")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data) -> Path:
    """A real, valid run of a tiny MLP, in a store of its own."""
    store = RunStore(tmp_path_factory.mktemp("tiny-run"))
    return record_training(store, TINY, train(TINY, tiny_data)).path


@pytest.fixture
def canvas_with_a_four(monkeypatch):
    """The Draw page's canvas, drawn on: AppTest cannot draw in the browser component (nor import it)."""
    drawn = types.SimpleNamespace(image_data=render_digit(4))
    fake = types.ModuleType("streamlit_drawable_canvas")
    fake.st_canvas = lambda **_: drawn
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)


def test_the_literal_helpers():
    assert markdown_literal("**a** [b](c)\n<i> $x$ :red[y]") == r"\*\*a\*\* \[b\]\(c\) \<i\> \$x\$ \:red\[y\]"
    assert plotly_literal("<b>x</b> & <br>") == "&lt;b&gt;x&lt;/b&gt; &amp; &lt;br&gt;"
    assert shorten("x" * 100) == "x" * 79 + "…" and shorten("a\n  b") == "a b"


LONG = ("[click](http://evil) " * 250)[:5000]
HOSTILE_NAMES = [LONG, "<img src=x onerror=alert(1)>", "<b>bold</b>", "[click](http://evil)", "![x](http://evil/x.png)",
                 "**bold**", "$math$", "<a href='http://evil'>link</a> & <br> :red[red]"]
# What must not reach a Markdown renderer unescaped, nor Plotly's HTML-like text.
RAW_MARKDOWN = ["<img", "<b>", "<a ", "<br>", "[click](", "![x](", "**bold**", "$math$", ":red["]
RAW_HTML = ["<img", "<b>", "<a ", "<br>"]


@pytest.fixture
def hostile_store(store_with_shipped, tiny_run) -> tuple[Path, list[str]]:
    """The shipped checkpoints and one valid run per hostile name, its message and device name hostile too."""
    ids = []
    for i, name in enumerate(HOSTILE_NAMES):
        folder = store_with_shipped / f"hostile-{i}"
        shutil.copytree(tiny_run, folder)
        data = json.loads((folder / RUN_FILE).read_text())
        write_json(folder / RUN_FILE, {**data, "name": name, "message": name, "device_name": name})
        ids.append(folder.name)
    return store_with_shipped, ids


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def leaks(at) -> list[str]:
    """Hostile text that an element would render: Markdown sources with an unescaped pattern (escaped pairs like
    "\\[" removed before looking), Plotly text with a raw tag."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    found = []
    for node in at._tree:
        proto, kind = getattr(node, "proto", None), getattr(node, "type", None)
        if proto is None or kind == "html":  # st.html: the app's own cards, never a run's text
            continue
        if kind == "plotly_chart":
            texts, raw = list(_strings(json.loads(proto.spec))), RAW_HTML
        elif kind == "table":  # each cell's shown text is Markdown; the data itself stays raw (CSV, sorting)
            shown = convert_arrow_bytes_to_pandas_df(proto.arrow_data.styler.display_values)
            texts, raw = [str(v) for v in shown.to_numpy().ravel()], RAW_MARKDOWN
        elif kind in ("selectbox", "multiselect", "text_input"):  # options and values are plain text
            texts, raw = [proto.label], RAW_MARKDOWN
        else:
            texts, raw = list(_strings(MessageToDict(proto))), RAW_MARKDOWN
        for text in texts:
            unescaped = re.sub(r"\\.", "", text) if raw is RAW_MARKDOWN else text
            found += [f"{kind}: {pattern} in {text[:120]!r}" for pattern in raw if pattern in unescaped]
    return found


def test_hostile_names_render_as_plain_text_on_every_page(app_env, hostile_store, canvas_with_a_four):
    root, ids = hostile_store
    app_env(root)
    assert RunStore(root).list().unreadable == []  # hostile, not malformed
    at = open_app()
    assert_clean(at)
    assert leaks(at) == []
    at.switch_page("pages/train.py").run()
    assert_clean(at)
    assert leaks(at) == []

    at.switch_page("pages/compare.py")
    at.session_state["compare.runs"] = ids
    at.run()
    for view in ("Overlaid curves", "Side by side", "Rename or delete"):
        at.session_state["compare.view"] = view
        at.run()
        assert_clean(at)
        assert leaks(at) == [], view
    assert all(len(option) < 120 for option in at.multiselect(key="compare.runs").options)  # names shortened
    at.selectbox(key="compare.manage.run").set_value("hostile-1").run()
    at.button(key="compare.manage.delete").click().run()
    assert_clean(at)
    assert any("\\<img src=x onerror=alert\\(1\\)\\>" in w.value for w in at.warning)
    assert leaks(at) == []
    at.button(key="compare.manage.yes").click().run()
    assert_clean(at)
    assert leaks(at) == [] and not (root / "hostile-1").exists()

    at.switch_page("pages/errors.py").run()
    at.selectbox(key="errors.run").set_value("hostile-3").run()
    at.selectbox(key="errors.versus").set_value("hostile-0").run()
    assert_clean(at)
    assert "\\[click\\]\\(http\\://evil\\)" in at.radio(key="errors.subset").options[0]
    assert leaks(at) == []

    at.switch_page("pages/draw.py")
    at.session_state["draw.models"] = ids[2:]
    at.run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == len(ids) - 2
    assert leaks(at) == []


@pytest.fixture
def weights_go_bad_after_listing(monkeypatch, store_with_shipped):
    """shipped-cnn's weights are cut short after the listing checked them: listing sees them whole (its check is
    skipped), loading meets them cut."""
    monkeypatch.setattr("digitlab.store.check_weights", lambda path, config: None)
    weights_file = store_with_shipped / "shipped-cnn" / WEIGHTS_FILE
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    return store_with_shipped


def test_errors_says_which_run_went_bad_and_lets_the_user_pick_another(app_env, weights_go_bad_after_listing):
    app_env(weights_go_bad_after_listing)
    at = open_app("pages/errors.py")
    at.selectbox(key="errors.run").set_value("shipped-cnn").run()
    assert_clean(at)
    assert any("cnn \\(shipped\\)** cannot be shown" in e.value and "cannot be read" in e.value for e in at.error)
    at.selectbox(key="errors.run").set_value("shipped-mlp").run()
    assert_clean(at)
    assert not at.error and at.subheader[0].value.endswith("% accuracy)")


def test_draw_skips_a_model_whose_weights_went_bad_and_the_others_guess(app_env, weights_go_bad_after_listing,
                                                                         canvas_with_a_four):
    app_env(weights_go_bad_after_listing)
    at = open_app("pages/draw.py")
    assert_clean(at)
    assert any(w.value.startswith("Skipped **cnn \\(shipped\\)**") for w in at.warning)
    assert len(at.get("plotly_chart")) == 3  # mlp, lenet and resnet guess
