"""The dashboard's speed figures, measured in a real Chromium on real MNIST, printed:

- the interval between live chart refreshes while training, and how often the page read the job's feed per refresh;
- training throughput with the dashboard open, against the CLI's on the same preset (and their ratio);
- the time a page switch takes, from the click to the new page finished: script ended, and the last change
  to the page (charts included) made; first each page's first visit in the server's life, then later visits;
- for a one-epoch run of the fast preset started from the Train page, clicked 2 s after the page loaded (cold) and
  12 s after (settled): click to the first point of the loss chart, click to the finished summary, and that run's
  train_s; beside it, the train_s of the same epoch run by the CLI just before, which says how fast the (shared,
  drifting) host is at that moment (tests/e2e/bench_clicks.py);
- the memory of the trainer the server keeps ready, while it waits (RSS and USS).

    DIGITLAB_DATA=../shared/data python -m tests.e2e.bench_dashboard [--server-env KEY=VALUE ...] [--clicks | --race]

With --clicks, only the Train click's figures; with --race, only the race's (tests/e2e/bench_race.py).

It serves the app over a temporary copy of the shipped checkpoints; nothing touches checkpoints/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil

from digitlab.dashboard.live import FEED_FILE
from digitlab.data import data_root
from tests.e2e.bench_clicks import PRESET, click_modes, cli_run, start_training, wait_finished
from tests.e2e.bench_race import run_race_bench
from tests.e2e.browser import LAUNCH_ARGS, Tab, copy_shipped, find_chromium, serve_app

# Throughput is compared over this many epochs of PRESET, in the CLI and from the page: one epoch is now ~2.5 s,
# short enough for the click's own page run and the first chart to weigh on a steady rate.
THROUGHPUT_EPOCHS = 3
THROUGHPUT_ROUNDS = 10  # one pair's ratio spans 75-120% (the host drifts within minutes): a median of many pairs


def images_per_second(record: dict) -> float:
    """Training throughput of a finished run's record: images over seconds of its batches (evaluation excluded)."""
    batches = record["batches"]
    return batches["samples_seen"][-1] / batches["elapsed_s"][-1]


def cmdline(process: psutil.Process) -> list[str]:
    """A process's command line; none for one that has ended (a trainer its server has not reaped yet)."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def ready_trainer(url: str, timeout: float = 300.0) -> psutil.Process:
    """The trainer the server at ``url`` keeps ready, once it waits for its order."""
    return ready_trainers(url, 1, timeout)[0]


def ready_trainers(url: str, count: int, timeout: float = 300.0) -> list[psutil.Process]:
    """The ``count`` trainers the server at ``url`` keeps ready, once they all wait for their orders: spawned
    children of the server whose CPU time has stopped growing (torch imported, MNIST loaded)."""
    port = urlparse(url).port
    server = next(p for p in psutil.process_iter(["cmdline"])
                  if f"--server.port={port}" in " ".join(p.info["cmdline"] or []))
    deadline, last, still = time.time() + timeout, None, 0
    while time.time() < deadline:
        trainers = [c for c in server.children() if "spawn_main" in " ".join(cmdline(c))]
        if len(trainers) == count:
            cpu = sum(sum(t.cpu_times()[:2]) for t in trainers)
            still = still + 1 if cpu == last else 0
            if still >= 4:  # 2 s without a tick of CPU: waiting on their pipes
                return trainers
            last = cpu
        time.sleep(0.5)
    raise RuntimeError(f"the server kept no {count} trainer(s) ready")


def set_up_training(tab: Tab, epochs: int) -> None:
    """Open Train on PRESET with ``epochs``, and wait as a person would before pressing it: until the page has
    settled (its charts' frame loads plotly.js after the script run) and the trainer is ready."""
    tab.open("train")
    tab.enter_text("train.epochs", str(epochs))
    ready_trainer(tab.base_url)


def open_training(tab: Tab, store: Path, epochs: int) -> Path:
    """Open Train and press it on PRESET with ``epochs`` once it has settled; the new run's run.json."""
    set_up_training(tab, epochs)
    return start_training(tab, store)


def dashboard_throughput(tab: Tab, store: Path) -> float:
    """Images/s of PRESET trained from the page while the page shows it live. The benchmark only watches the
    run store meanwhile: reading the page would itself take CPU from the training."""
    return images_per_second(wait_finished(open_training(tab, store, epochs=THROUGHPUT_EPOCHS)))


# Counts, in window.feedReads, the charts' frame's reads of the job's feed (not of the file it watches once the job
# has ended): each costs the browser and the server a little CPU.
COUNT_FEED_READS = """([selector, feedFile]) => {
    const frame = document.querySelector(selector).querySelector('iframe').contentWindow;
    const fetch = frame.fetch;
    window.feedReads = 0;
    frame.fetch = (...args) => { if (String(args[0]).startsWith(feedFile)) window.feedReads += 1;
                                 return fetch(...args); }; }"""


def refresh_intervals(tab: Tab, store: Path) -> tuple[list[float], int]:
    """Seconds between successive updates of the live loss chart, read from the chart in the page; and how many
    times the charts' frame read the job's feed meanwhile."""
    set_up_training(tab, epochs=2)
    tab.page.evaluate(COUNT_FEED_READS, [tab.keyed("train.charts"), FEED_FILE])
    run_json = start_training(tab, store)
    tab.button("train.stop").wait_for(timeout=60000)
    changes, last = [], None
    while tab.button("train.stop").count():
        lengths = tab.trace_lengths("train.charts", "batch_loss")
        points = lengths[0] if lengths else 0
        if points and points != last:
            changes.append(time.perf_counter())
            last = points
        time.sleep(0.05)
    wait_finished(run_json)
    return [b - a for a, b in zip(changes, changes[1:])], tab.page.evaluate("window.feedReads")


# The page records when the sidebar is clicked and when its DOM last changed. A page has finished switching when
# its script has ended and its DOM has been still for QUIET_S: charts and images are drawn after the script ends.
WATCH_DOM = """() => { window.lastChangeAt = performance.now();
    if (window.domWatch) return;
    window.domWatch = new MutationObserver(() => { window.lastChangeAt = performance.now(); });
    window.domWatch.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
    document.addEventListener("click", () => { window.clickAt = performance.now(); }, true); }"""
QUIET_S = 0.4


def page_switch_seconds(tab: Tab, rounds: int = 3) -> dict[str, list[float]]:
    """Seconds from a click in the sidebar to the new page's last change, per page."""
    timings: dict[str, list[float]] = {}
    tab.open()
    for _ in range(rounds):
        for label in ("Compare", "Errors", "Draw", "Train", "Home"):  # Train last: it readies a trainer (5 s of CPU)
            tab.page.evaluate(WATCH_DOM)
            tab.page.locator("[data-testid='stSidebarNav']").get_by_text(label, exact=True).click()
            heading = "digitlab" if label == "Home" else label
            tab.page.wait_for_selector(f"h1:has-text('{heading}')", timeout=30000)
            tab.wait_for_idle()
            tab.page.wait_for_function(f"performance.now() - window.lastChangeAt > {QUIET_S * 1000}", polling=50,
                                       timeout=30000)
            timings.setdefault(label, []).append(tab.page.evaluate("(window.lastChangeAt - window.clickAt) / 1000"))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for the app server only, e.g. DIGITLAB_THREADS=1")
    parser.add_argument("--clicks", action="store_true",
                        help="only the Train click's figures, in both modes (cold and settled)")
    parser.add_argument("--race", action="store_true",
                        help="only the race's figures: the classroom race from the page against its runs alone")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = dict(os.environ)
    extra = dict(assignment.split("=", 1) for assignment in args.server_env)
    root = data_root()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = copy_shipped(tmp / "app-store")
        with serve_app(store, root, tmp / "streamlit.log", extra) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium(), args=LAUNCH_ARGS)
            tab = Tab(browser.new_context(viewport={"width": 1440, "height": 1100}).new_page(), url)
            if args.race:
                run_race_bench(tab, root, tmp, ready_trainers)
                browser.close()
                return
            first_visits = page_switch_seconds(tab, rounds=1)  # each page's first visit in the server's life
            print("first visits:                  " + ", ".join(f"{label} {times[0]:.2f} s"
                                                             for label, times in first_visits.items()), flush=True)
            memory = ready_trainer(url).memory_full_info()
            print(f"ready trainer, waiting:        RSS {memory.rss / 2**20:.0f} MB, USS {memory.uss / 2**20:.0f} MB",
                  flush=True)
            click_modes(tab, store, tmp, env, lambda: ready_trainer(url))
            if args.clicks:
                browser.close()
                return
            # The machine's speed drifts by 20% and more over minutes (a shared host): each page run is compared
            # with a CLI run just before it, while the page stands idle.
            ratios = []
            for round_ in range(THROUGHPUT_ROUNDS):
                ready_trainer(url)  # not loading any more: the CLI run has the machine to itself
                cli_ips = images_per_second(cli_run(tmp / f"cli-store-{round_}", env, THROUGHPUT_EPOCHS))
                app_ips = dashboard_throughput(tab, store)
                ratios.append(app_ips / cli_ips)
                print(f"{THROUGHPUT_EPOCHS} epochs of {PRESET}:            CLI {cli_ips:6.0f} images/s, dashboard open "
                      f"{app_ips:6.0f} images/s = {ratios[-1]:.0%} of the CLI", flush=True)
            print(f"  median of {THROUGHPUT_ROUNDS}:                {statistics.median(ratios):.0%} of the CLI", flush=True)
            intervals, reads = refresh_intervals(tab, store)
            print(f"chart refresh interval:        median {statistics.median(intervals):.2f} s, "
                  f"max {max(intervals):.2f} s over {len(intervals)} refreshes; "
                  f"{reads / (len(intervals) + 1):.1f} feed reads a refresh")
            switches = page_switch_seconds(tab)
            every = [t for times in switches.values() for t in times]
            print(f"page switch:                   median {statistics.median(every):.2f} s, "
                  f"max {max(every):.2f} s over {len(every)} switches")
            for label, times in switches.items():
                print(f"  {label + ':':9s} " + "  ".join(f"{t:.2f}" for t in times) + " s")
            browser.close()


if __name__ == "__main__":
    main()
