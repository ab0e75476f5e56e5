"""Run folders fuzzed from a real tiny run: every malformed one is listed unreadable with a reason naming the problem,
no page crashes on them; hostile but valid names render as plain text everywhere; weights that go bad between
listing and loading are named, and the page goes on."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from digitlab.bench.strokes import render_digit
from digitlab.config import TrainConfig
from digitlab.dashboard.text import markdown_literal, plotly_literal, shorten
from digitlab.engine import train
from digitlab.recorder import record_training
from digitlab.schema import FORMAT
from digitlab.store import RUN_FILE, WEIGHTS_FILE, RunStore, write_json
from tests.conftest import SHIPPED
from tests.test_app import app_env, assert_clean, draw_bars, open_app  # noqa: F401 (app_env is a fixture)

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
    assert markdown_literal("- a-b") == r"\- a-b" and markdown_literal("1. a.b") == r"1\. a.b"
    assert plotly_literal("<b>x</b> & <br>") == "&lt;b&gt;x&lt;/b&gt; &amp; &lt;br&gt;"
    assert shorten("x" * 100) == "x" * 79 + "…" and shorten("a\n  b") == "a b"


LONG = ("[click](http://evil) " * 250)[:5000]
HOSTILE_NAMES = [LONG, "<img src=x onerror=alert(1)>", "<b>bold</b>", "[click](http://evil)", "![x](http://evil/x.png)",
                 "**bold**", "$math$", "<a href='http://evil'>link</a> & <br> :red[red]"]
# What must not reach a Markdown renderer unescaped, nor Plotly's HTML-like text.
RAW_MARKDOWN = ["<img", "<b>", "<a ", "<br>", "[click](", "![x](", "**bold**", "$math$", ":red[", "](http://"]
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


def _json_within(value):
    """``value`` with every string that holds a JSON object or list replaced by what it holds, all the way down."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _json_within(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, dict):
        return {key: _json_within(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_within(item) for item in value]
    return value


class _AppMarkup(HTMLParser):
    """What an st.html body of the app's own holds: its tags, their attributes, and each <b>'s text. The app emits
    only these tags (its one script: the chart code's prefetch, a module), bold only digits, and images only as
    data: URLs; a name that slipped in unescaped adds others."""

    OWN_TAGS = {"div", "span", "img", "figure", "figcaption", "b"}

    def __init__(self):
        super().__init__()
        self.found, self.bold = [], False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        own = tag in self.OWN_TAGS or (tag == "script" and attributes == {"type": "module"})
        if not own or any(name.startswith("on") for name in attributes):
            self.found.append(f"<{tag} {attributes}>")
        if tag == "img" and not (attributes.get("src") or "").startswith("data:image/png;base64,"):
            self.found.append(f"an image from {attributes.get('src')!r}")
        self.bold = tag == "b"

    def handle_endtag(self, tag):
        self.bold = False

    def handle_data(self, data):
        if self.bold and not data.strip().isdigit():
            self.found.append(f"<b>{data[:60]}</b>")
        if len(data) > 1000:
            self.found.append(f"{len(data)} characters in {data[:120]!r}")


def leaks(at) -> list[str]:
    """Hostile text that an element would render: Markdown sources with an unescaped pattern (escaped pairs like
    "\\[" removed before looking), Plotly text with a raw tag, and any text of over 1,000 characters (a long name
    shown unshortened)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    found = []
    for node in at._tree:
        proto, kind = getattr(node, "proto", None), getattr(node, "type", None)
        if proto is None:
            continue
        if kind == "html":  # st.html: the app's own markup, with every name escaped inside it
            markup = _AppMarkup()
            markup.feed(proto.body)
            found += [f"html: {leak}" for leak in markup.found]
            continue
        if kind == "dataframe":  # st.dataframe draws its cells as plain text in a grid: nothing is rendered
            continue
        if kind == "plotly_chart":
            texts, raw = list(_strings(json.loads(proto.spec))), RAW_HTML
        elif kind == "component_instance":  # the live charts: Plotly figures as JSON strings in JSON arguments
            texts, raw = list(_strings(_json_within(json.loads(proto.json_args)))), RAW_HTML
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
            found += [f"{kind}: {len(text)} characters in {text[:120]!r}"] if len(text) > 1000 else []
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
    at.session_state["draw.models"] = [run_id for run_id in ids if run_id != "hostile-1"]  # deleted above
    at.run()
    assert_clean(at)
    assert len(draw_bars(at)) == len(ids) - 1
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
    assert len(draw_bars(at)) == 3  # mlp, lenet and resnet guess


PAGES = [None, "pages/train.py", "pages/compare.py", "pages/errors.py", "pages/draw.py"]
LISTING_PAGES = ("pages/compare.py", "pages/errors.py", "pages/draw.py")  # widgets.runs_for_page: the unreadable expander


def _at(data: dict, path: str) -> tuple[dict | list, str | int]:
    """The container and key of a dotted path ("epochs.0.test_acc") in ``data``."""
    *parents, last = path.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data, int(last) if isinstance(data, list) else last


def set_(path: str, value):
    def change(data: dict) -> None:
        container, key = _at(data, path)
        container[key] = value
    return change


def drop(path: str):
    def change(data: dict) -> None:
        container, key = _at(data, path)
        del container[key]
    return change


def weights(change):
    change.part = "weights"  # changes the folder's weights, not run.json
    return change


def text(change):
    change.part = "text"  # changes run.json's text: what json.dumps cannot write
    return change


def cut_weights(keep):
    """Keep the first keep(size) bytes of the weights."""
    def change(folder: Path) -> None:
        data = (folder / WEIGHTS_FILE).read_bytes()
        (folder / WEIGHTS_FILE).write_bytes(data[:keep(len(data))])
    return weights(change)


def weights_of(run: str):
    return weights(lambda folder: shutil.copy(SHIPPED / run / WEIGHTS_FILE, folder / WEIGHTS_FILE))


NAN, INF = float("nan"), float("inf")
MISSING = ["format", "name", "status", "message", "config", "created_at", "updated_at", "finished_at", "pid", "host",
           "versions", "epochs", "batches", "final", "final.test_acc", "final.epochs_done", "epochs.0.test_loss",
           "batches.loss", "batches.accuracy", "held_out.split", "held_out.size", "held_out.accuracy"]
# (variant, change to run.json or to the folder, what the reason must say)
VARIANTS = [
    *[(f"missing-{field}", drop(field), re.sub(r"\.(\d+)", r"[\1]", f"{field} is missing")) for field in MISSING],
    # wrong types
    ("type-name", set_("name", 5), "name must be text, got 5"),
    ("type-message", set_("message", ["x"]), "message must be text"),
    ("type-config", set_("config", "mlp"), "config must be an object"),
    ("type-config-field", set_("config.batch_size", "64"), "config: batch_size must be an integer"),
    ("type-created", set_("created_at", 20261125), "created_at must be an ISO 8601 date"),
    ("type-pid", set_("pid", "123"), "pid must be an integer"),
    ("type-versions", set_("versions", ["2.0"]), "versions must be an object"),
    ("type-epochs", set_("epochs", {"1": {}}), "epochs must be a list"),
    ("type-epoch-entry", set_("epochs.0", "epoch one"), "epochs[0] must be an object"),
    ("type-batches", set_("batches", [1, 2]), "batches must be an object"),
    ("type-batch-loss", set_("batches.loss", "low"), "batches.loss must be a list"),
    ("type-final", set_("final", [0.9]), "final must be an object"),
    ("type-test-acc", set_("final.test_acc", "0.9"), "final.test_acc must be a number, got '0.9'"),
    ("type-epochs-done", set_("final.epochs_done", 1.5), "final.epochs_done must be an integer, got 1.5"),
    ("type-param-count", set_("param_count", True), "param_count must be an integer, got True"),
    ("type-shipped", set_("shipped", "yes"), "shipped must be true or false"),
    ("unequal-batches", lambda d: d["batches"]["loss"].pop(), "batches lists must have equal lengths"),
    ("type-held-out", set_("held_out", "lots"), "held_out must be an object, got 'lots'"),
    ("type-held-out-split", set_("held_out.split", "train"), "held_out.split must be one of validation, test"),
    ("type-held-out-loss", set_("held_out.loss", 0.1), "held_out.loss must be a list, got 0.1"),
    ("unequal-held-out", lambda d: d["held_out"]["accuracy"].pop(), "held_out lists must have equal lengths"),
    ("nan-held-out-acc", set_("held_out.accuracy.0", NAN), "held_out.accuracy[0] must be a finite number, got nan"),
    ("inf-held-out-loss", set_("held_out.loss.0", INF), "held_out.loss[0] must be a finite number, got inf"),
    ("huge-held-out-size", set_("held_out.size", 10**400), "held_out.size must be an integer between 1 and 1e+12"),
    ("nan-batch-accuracy", set_("batches.accuracy.1", NAN), "batches.accuracy[1] must be a finite number, got nan"),
    # NaN and infinities (a completed run: only diverged or failed runs may hold a non-finite loss)
    ("nan-test-acc", set_("final.test_acc", NAN), "final.test_acc must be a finite number, got nan"),
    ("nan-test-loss", set_("final.test_loss", NAN), "final.test_loss must be a finite number, got nan"),
    ("inf-train-s", set_("final.train_s", INF), "final.train_s must be a finite number, got inf"),
    ("inf-epoch-loss", set_("epochs.0.train_loss", INF), "epochs[0].train_loss must be a finite number, got inf"),
    ("nan-epoch-lr", set_("epochs.0.lr", NAN), "epochs[0].lr must be a finite number, got nan"),
    ("nan-batch-loss", set_("batches.loss.2", NAN), "batches.loss[2] must be a finite number, got nan"),
    ("neg-inf-elapsed", set_("batches.elapsed_s.0", -INF), "batches.elapsed_s[0] must be a finite number, got -inf"),
    ("nan-config-lr", set_("config.lr", NAN), "config: lr must be above 0 and at most 10, got nan"),
    # huge numbers
    ("huge-test-acc", set_("final.test_acc", 1e308), "final.test_acc must be a number between 0 and 1, got 1e+308"),
    ("huge-param-count", set_("param_count", 10**400), "param_count must be an integer between 0 and 1e+12"),
    ("huge-train-s", set_("final.train_s", 1e308), "final.train_s must be a number between 0 and 1e+09"),
    ("huge-samples", set_("epochs.0.samples_seen", 10**400), "epochs[0].samples_seen must be an integer between"),
    ("huge-batch-samples", set_("batches.samples_seen.0", 1e308), "batches.samples_seen[0] must be a number between"),
    ("huge-pid", set_("pid", 10**400), "pid must be an integer between"),
    ("huge-int-5000-digits", text(lambda t: re.sub(r'"pid": \d+', '"pid": 1' + "0" * 5000, t)),
     "run.json is not valid JSON (Exceeds the limit (4300 digits) for integer string conversion"),
    ("huge-exponent", text(lambda t: re.sub(r'("final": \{\s*"test_acc": )[\d.e-]+', r"\g<1>1e400", t)),
     "final.test_acc must be a finite number, got inf"),
    ("huge-loss", set_("final.test_loss", 1e308), "final.test_loss must be a number between 0 and 3.5e+38"),
    ("huge-config-epochs", set_("config.epochs", 10**400), "config: epochs must be between 1 and 1000"),
    ("huge-hidden", set_("config.model_options.hidden", [10**400]), "config: hidden"),
    ("negative-acc", set_("epochs.0.test_acc", -0.5), "epochs[0].test_acc must be a number between 0 and 1, got -0.5"),
    # bad dates
    ("date-words", set_("created_at", "yesterday"), "created_at must be an ISO 8601 date"),
    ("date-month-13", set_("created_at", "2026-13-45T00:00:00+00:00"), "created_at must be an ISO 8601 date"),
    ("date-empty", set_("updated_at", ""), "updated_at must be an ISO 8601 date"),
    ("date-naive", set_("created_at", "2026-11-25T07:15:13"), "created_at must be an ISO 8601 date and time with a"),
    ("date-year-1", set_("finished_at", "0001-01-01T00:00:00+00:00"), "finished_at must be an ISO 8601 date"),
    # bad statuses
    ("status-unknown", set_("status", "finished"), "status must be one of running, completed"),
    ("status-case", set_("status", "COMPLETED"), "status must be one of"),
    ("status-null", set_("status", None), "status must be one of"),
    ("status-html", set_("status", "<b>done</b>"), "status must be one of"),
    ("completed-without-final", set_("final", {}), "final is empty, but a completed run has finished"),
    # bad format versions
    ("format-newer", set_("format", FORMAT + 1),
     f"format {FORMAT + 1} is newer than this digitlab reads (format {FORMAT}): upgrade digitlab"),
    ("format-far-newer", set_("format", 10**400), "is newer than this digitlab reads"),
    ("format-zero", set_("format", 0), "format must be a positive integer, got 0"),
    ("format-text", set_("format", "1"), "format must be a positive integer, got '1'"),
    ("format-float", set_("format", 1.0), "format must be a positive integer, got 1.0"),
    ("format-null", set_("format", None), "format must be a positive integer, got None"),
    # config that TrainConfig cannot read or validate
    ("config-unknown-field", set_("config.colour", "red"), "config cannot be read: unknown config field(s) colour"),
    ("config-bad-device", set_("config.device", "tpu"), "config: device must be one of"),
    ("config-bad-model", set_("config.model", "transformer"), "config: model must be one of"),
    # truncated or foreign weights (the run is completed, so its weights are meant to be used)
    ("weights-half", cut_weights(lambda size: size // 2), "weights.safetensors cannot be read"),
    ("weights-one-byte-short", cut_weights(lambda size: size - 1), "weights.safetensors cannot be read"),
    ("weights-header-only", cut_weights(lambda size: 20), "weights.safetensors cannot be read"),
    ("weights-empty", cut_weights(lambda size: 0), "weights.safetensors cannot be read"),
    ("weights-pickle", weights(lambda f: (f / WEIGHTS_FILE).write_bytes(b"\x80\x04pickle")),
     "weights.safetensors cannot be read"),
    ("weights-of-lenet", weights_of("shipped-lenet"), "another architecture than this mlp"),
    ("weights-of-big-mlp", weights_of("shipped-mlp"), "another architecture than this mlp (missing"),
    ("config-of-other-width", set_("config.model_options.hidden", [64]), "another architecture than this mlp"),
]


def apply(change, folder: Path) -> None:
    part = getattr(change, "part", None)
    if part == "weights":
        change(folder)
        return
    if part == "text":
        (folder / RUN_FILE).write_text(change((folder / RUN_FILE).read_text()))
        return
    data = json.loads((folder / RUN_FILE).read_text())
    change(data)
    write_json(folder / RUN_FILE, data)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory, tiny_run) -> tuple[Path, dict[str, str]]:
    """The shipped checkpoints, one valid run and every variant in one store, and the store's listed reasons."""
    root = tmp_path_factory.mktemp("fuzz") / "checkpoints"
    root.mkdir()
    for run in SHIPPED.glob("shipped-*"):
        shutil.copytree(run, root / run.name, ignore=shutil.ignore_patterns("predictions.safetensors", ".lock"))
    shutil.copytree(tiny_run, root / "valid-tiny")
    for name, change, _ in VARIANTS:
        shutil.copytree(tiny_run, root / name)
        apply(change, root / name)
    listing = RunStore(root).list()
    return root, {path.name: reason for path, reason in listing.unreadable}


def test_the_variants_cover_each_kind_of_damage():
    names = [name for name, _, _ in VARIANTS]
    assert len(names) >= 50 and len(set(names)) == len(names)
    for kind in ("missing-", "type-", "nan-", "inf-", "huge-", "date-", "status-", "format-", "weights-"):
        assert any(name.startswith(kind) for name in names), kind


@pytest.mark.parametrize("name, expected", [(name, expected) for name, _, expected in VARIANTS])
def test_each_variant_is_listed_unreadable_with_its_problem(fuzz_store, name, expected):
    _, reasons = fuzz_store
    assert expected in reasons[name]


def test_the_valid_runs_beside_them_still_read(fuzz_store):
    root, reasons = fuzz_store
    assert {r.id for r in RunStore(root).list().runs} == {"valid-tiny", *(p.name for p in SHIPPED.glob("shipped-*"))}
    assert len(reasons) == len(VARIANTS)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_beside_every_variant_and_lists_its_reason(app_env, fuzz_store, page):
    root, reasons = fuzz_store
    app_env(root)
    at = open_app(page)
    assert_clean(at)
    if page in LISTING_PAGES:
        (expander,) = [e for e in at.expander if e.label == f"{len(VARIANTS)} unreadable run folder(s) skipped"]
        shown = {w.value for w in expander.warning}
        for name, _, expected in VARIANTS:
            line = f"**{markdown_literal(name)}**: {markdown_literal(reasons[name])}"
            assert line in shown and markdown_literal(expected) in line
