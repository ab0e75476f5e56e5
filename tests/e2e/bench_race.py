"""The race's figures, for `python -m tests.e2e.bench_dashboard --race`: the classroom race (the four race-* presets)
started from the Train page once its trainers are ready, in Chromium on real MNIST:

- from the click to the first point of every run on the training-loss chart (each run's own curve);
- the interval between refreshes of the charts while four runs train;
- the race's wall time (click to its summary) against the sum of the same runs trained alone from the CLI, one
  after another, each with every core (their train_s; and their processes' wall times, start-up included);
- each run's final test accuracy.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from digitlab.config import RACE_SETS
from tests.conftest import REPO
from tests.e2e.browser import TRACE_LENGTHS_JS, Tab

RACE = RACE_SETS["classroom"]

# Installed in the page just before the click on Start: notes the click, when each run's curve on the training-loss
# chart first has a point, every change of those curves (a refresh), and when the race's summary appears. Looked at
# every 50 ms from the page itself, so that the benchmark's own reading takes no CPU from the race.
WATCH_RACE = f"""([selector, chart, runs]) => {{
    const marks = window.raceMarks = {{click: null, first: Array(runs).fill(null), refreshes: [], summary: null}};
    let last = null;
    document.addEventListener("click", () => {{ marks.click = marks.click ?? performance.now(); }}, true);
    const timer = setInterval(() => {{
        if (marks.click === null) return;
        const lengths = ({TRACE_LENGTHS_JS})(selector, chart);
        if (lengths && lengths.length === runs) {{
            lengths.forEach((n, i) => {{ if (n > 0 && marks.first[i] === null) marks.first[i] = performance.now(); }});
            const shown = JSON.stringify(lengths);
            if (last !== null && shown !== last) marks.refreshes.push(performance.now());
            last = shown;
        }}
        if (document.querySelector(".st-key-race-compare")) {{
            marks.summary = performance.now();
            clearInterval(timer);
        }}
    }}, 50); }}"""


def cli_alone(presets: list[str], data: Path, out: Path) -> list[tuple[str, float, float, float]]:
    """Each preset trained alone from the CLI, one after another: (preset, train_s, process wall s, test_acc)."""
    found = []
    for name in presets:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "digitlab", "train", "--preset", name, "--out", str(out), "--quiet",
                        "--no-download", "--data", str(data)], cwd=REPO, check=True, capture_output=True)
        wall = time.perf_counter() - started
        run_json = max(out.glob("*/run.json"), key=lambda p: p.stat().st_mtime)
        final = json.loads(run_json.read_text())["final"]
        found.append((name, final["train_s"], wall, final["test_acc"]))
    return found


def race_from_the_page(tab: Tab, ready_trainers) -> tuple[list[float], list[float], float, list[tuple[str, str]]]:
    """The classroom race started from Train once its trainers wait: (seconds from the click to each run's first
    point, seconds between chart refreshes while all four trained, seconds from the click to the summary, and each
    run's (name, test accuracy) as its summary shows)."""
    tab.open("train")
    tab.page.get_by_role("tab", name="Race several").click()
    tab.button("race.set.classroom").click()
    tab.wait_for_rerun()
    ready_trainers(tab.base_url, len(RACE))
    time.sleep(2)  # settled: the charts' frame has loaded plotly.js
    tab.page.evaluate(WATCH_RACE, [tab.keyed("train.charts"), "train_loss", len(RACE)])
    tab.button("race.start").click()
    tab.page.wait_for_function("window.raceMarks.summary !== null", polling=500, timeout=600000)
    marks = tab.page.evaluate("window.raceMarks")
    firsts = [(first - marks["click"]) / 1000 for first in marks["first"]]
    # While all four run: from the last run's first point to the first run's end, as the page's summary rows say.
    refreshes = [t / 1000 for t in marks["refreshes"]]
    intervals = [b - a for a, b in zip(refreshes, refreshes[1:])]
    rows = tab.page.locator("[data-testid='stTable'] tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.children].map(cell => cell.innerText.trim()))")
    accuracies = [(row[0], row[2]) for row in rows]
    return firsts, intervals, (marks["summary"] - marks["click"]) / 1000, accuracies


def run_race_bench(tab: Tab, data: Path, tmp: Path, ready_trainers) -> None:
    firsts, intervals, wall, accuracies = race_from_the_page(tab, ready_trainers)
    print(f"race of {len(RACE)} ({', '.join(RACE)}), from the page:", flush=True)
    print(f"  click -> first point of every run: {', '.join(f'{t:.2f}' for t in firsts)} s (worst {max(firsts):.2f} s)")
    print(f"  chart refresh interval:            median {statistics.median(intervals):.2f} s, "
          f"max {max(intervals):.2f} s over {len(intervals)} refreshes")
    print(f"  click -> summary (wall time):      {wall:.1f} s")
    print("  test accuracy:                     " + ", ".join(f"{name} {acc}" for name, acc in accuracies))
    alone = cli_alone(RACE, data, tmp / "cli-race")
    train_s, process_s = sum(a[1] for a in alone), sum(a[2] for a in alone)
    print("the same runs alone from the CLI, one after another: " + ", ".join(
        f"{name} {t:.1f} s ({acc:.2%})" for name, t, _, acc in alone), flush=True)
    print(f"  sum of train_s {train_s:.1f} s, of process wall times {process_s:.1f} s; the race's wall time is "
          f"{wall / train_s:.2f}x the first, {wall / process_s:.2f}x the second")
