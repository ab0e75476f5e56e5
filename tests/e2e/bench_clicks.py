"""Train's click, timed as a person meets it, for `python -m tests.e2e.bench_dashboard` (and `--clicks` alone): one
epoch of the fast preset from the Train page, from the click to the loss chart's first point and to the finished
summary, in two modes of 5 clicks each:

- cold: the page opened afresh (a reload) and Train clicked 2 s after it loaded;
- settled: the page opened afresh and Train clicked 12 s after it loaded, once it has settled.

Before each click the server has had the time to ready its trainer (it does so once a run has ended), and the CLI
has trained the same epoch, whose train_s says how fast the (shared, drifting) host is at that moment.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from tests.conftest import REPO
from tests.e2e.browser import TRACE_LENGTHS_JS, Tab

PRESET = "fast"
CLICKS = 5  # per mode: the host drifts by 10-20% within minutes
MODES = {"cold": 2.0, "settled": 12.0}  # seconds from the page's load to the click

# Installed in the page as soon as it has loaded: the page itself notes the click, the first points of the new run
# on the loss chart and the summary's appearance, looking every 50 ms. Asking from the benchmark instead, a round
# trip through Playwright every 50 ms, took so much CPU that the run it timed trained 40-70% slower than the CLI.
WATCH_RUN = f"""([selector, chart]) => {{
    const marks = window.runMarks = {{click: null, firstPoint: null, running: false, summary: null}};
    // Until the click the chart may show the last run's curve (or be loading): its first point after the click is
    // the first change of what it showed just before.
    let before = 0;
    document.addEventListener("click", () => {{ marks.click = marks.click ?? performance.now(); }}, true);
    const timer = setInterval(() => {{
        const lengths = ({TRACE_LENGTHS_JS})(selector, chart);
        if (marks.click === null) {{ before = lengths ? lengths[0] : 0; return; }}
        marks.running = marks.running || document.querySelector(".st-key-train-stop") !== null;
        if (!marks.running) return;
        if (marks.firstPoint === null && lengths && lengths[0] && lengths[0] !== before) {{
            marks.firstPoint = performance.now();
        }}
        // The summary of a run: the metrics without the Stop button (the last run's, still on the page while the
        // click's script run has not ended, do not count).
        const labels = document.querySelectorAll("[data-testid='stMetricLabel']");
        const stopped = document.querySelector(".st-key-train-stop") === null;
        if (stopped && [...labels].some(label => label.textContent.trim() === "Test accuracy")) {{
            marks.summary = performance.now();
            clearInterval(timer);
        }}
    }}, 50); }}"""


def cli_run(store: Path, env: dict[str, str], epochs: int) -> dict:
    """Train PRESET for ``epochs`` with the CLI, in a process of its own; the run's record."""
    subprocess.run([sys.executable, "-m", "digitlab", "train", "--preset", PRESET, "--epochs", str(epochs),
                    "--out", str(store), "--quiet", "--no-download"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    (run_json,) = sorted(store.glob("*/run.json"), key=lambda p: p.stat().st_mtime)[-1:]
    return json.loads(run_json.read_text())


def start_training(tab: Tab, store: Path) -> Path:
    """Press Train on the page as it is; the new run's run.json."""
    before = set(store.glob("*/run.json"))
    tab.button("train.start").click()
    deadline = time.time() + 60
    while not set(store.glob("*/run.json")) - before:
        if time.time() > deadline:
            raise RuntimeError("the run did not start")
        time.sleep(0.1)
    (run_json,) = set(store.glob("*/run.json")) - before
    return run_json


def wait_finished(run_json: Path) -> dict:
    """The run's record, once it has finished."""
    while (record := json.loads(run_json.read_text()))["status"] == "running":
        time.sleep(0.25)
    return record


def timed_click(tab: Tab, store: Path, after_load_s: float) -> tuple[float, float, float]:
    """Open Train afresh, press it ``after_load_s`` after the page's load event; (seconds from the click to the
    loss chart's first point, to the finished summary; the run's train_s)."""
    tab.page.goto(f"{tab.base_url}/train")  # returns at the load event
    loaded = time.perf_counter()
    tab.page.evaluate(WATCH_RUN, [tab.keyed("train.charts"), "batch_loss"])
    tab.button("train.start").wait_for(timeout=30000)
    time.sleep(max(0.0, loaded + after_load_s - time.perf_counter()))
    record = wait_finished(start_training(tab, store))
    tab.page.wait_for_function("window.runMarks.summary !== null", polling=250, timeout=60000)
    marks = tab.page.evaluate("window.runMarks")
    first = (marks["firstPoint"] - marks["click"]) / 1000 if marks["firstPoint"] is not None else float("nan")
    return first, (marks["summary"] - marks["click"]) / 1000, record["final"]["train_s"]


def click_modes(tab: Tab, store: Path, scratch: Path, env: dict[str, str], ready: Callable[[], object]) -> None:
    """Both modes, CLICKS clicks each, printed one by one and as medians with their ranges."""
    for mode, after_load_s in MODES.items():
        runs, cli_train_s = [], []
        for click in range(CLICKS):
            ready()  # the trainer the last run's end readied: the page, not the server, is what is cold
            cli_train_s.append(cli_run(scratch / f"cli-{mode}-{click}", env, epochs=1)["final"]["train_s"])
            runs.append(timed_click(tab, store, after_load_s))
            first, summary, train_s = runs[-1]
            print(f"{mode:7s} click {click + 1} ({after_load_s:g} s after load): first chart point {first:.2f} s, "
                  f"finished summary {summary:.2f} s; its train_s {train_s:.2f} s; the CLI's just before "
                  f"{cli_train_s[-1]:.2f} s", flush=True)
        firsts, summaries, trains = (sorted(column) for column in zip(*runs))
        print(f"  {mode} median of {CLICKS}: first chart point {statistics.median(firsts):.2f} s "
              f"({firsts[0]:.2f}-{firsts[-1]:.2f}), finished summary {statistics.median(summaries):.2f} s "
              f"({summaries[0]:.2f}-{summaries[-1]:.2f}); its train_s {statistics.median(trains):.2f} s; "
              f"the CLI's {statistics.median(cli_train_s):.2f} s", flush=True)
