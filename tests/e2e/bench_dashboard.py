"""The dashboard's speed figures, measured in a real Chromium on real MNIST, printed:

- the interval between live chart refreshes while training;
- training throughput with the dashboard open, against the CLI's on the same preset (and their ratio);
- the time a page switch takes, from the click to the new page finished.

    DIGITLAB_DATA=../shared/data python -m tests.e2e.bench_dashboard [--threads N]

It serves the app over a temporary copy of the shipped checkpoints; nothing touches checkpoints/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitlab.data import data_root
from tests.conftest import REPO
from tests.e2e.browser import LAUNCH_ARGS, Tab, copy_shipped, find_chromium, serve_app

PRESET = "fast"


def images_per_second(run_json: Path) -> float:
    """Training throughput of a finished run: images over seconds of its batches (evaluation excluded)."""
    batches = json.loads(run_json.read_text())["batches"]
    return batches["samples_seen"][-1] / batches["elapsed_s"][-1]


def cli_throughput(store: Path, env: dict[str, str]) -> float:
    subprocess.run([sys.executable, "-m", "digitlab", "train", "--preset", PRESET, "--out", str(store), "--quiet",
                    "--no-download"], cwd=REPO, env=env, check=True, capture_output=True)
    (run_json,) = sorted(store.glob("*/run.json"), key=lambda p: p.stat().st_mtime)[-1:]
    return images_per_second(run_json)


def dashboard_run(tab: Tab, store: Path) -> tuple[float, list[float]]:
    """Train PRESET from the page while watching it; (images/s, seconds between chart updates)."""
    before = set(store.glob("*/run.json"))
    tab.open("train")
    tab.page.locator(tab.keyed("train.start")).get_by_role("button").click()
    tab.page.get_by_role("button", name="Stop").wait_for(timeout=60000)
    changes, last = [], None
    while tab.page.get_by_role("button", name="Stop").count():
        lengths = tab.trace_lengths("train.chart.batch_loss")
        points = lengths[0] if lengths else 0
        if points and points != last:
            changes.append(time.perf_counter())
            last = points
        time.sleep(0.05)
    tab.page.get_by_text("Test accuracy", exact=True).wait_for(timeout=120000)
    (run_json,) = set(store.glob("*/run.json")) - before
    return images_per_second(run_json), [b - a for a, b in zip(changes, changes[1:])]


def page_switch_seconds(tab: Tab, rounds: int = 3) -> list[float]:
    timings = []
    tab.open()
    for _ in range(rounds):
        for label in ("Train", "Compare", "Errors", "Draw", "Home"):
            start = time.perf_counter()
            tab.page.locator("[data-testid='stSidebarNav']").get_by_text(label, exact=True).click()
            heading = "digitlab" if label == "Home" else label
            tab.page.wait_for_selector(f"h1:has-text('{heading}')", timeout=30000)
            tab.wait_for_rerun()
            timings.append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="DIGITLAB_THREADS for both the CLI and the server")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = dict(os.environ)
    if args.threads:
        env["DIGITLAB_THREADS"] = str(args.threads)
    root = data_root()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cli_ips = cli_throughput(tmp / "cli-store", env)
        print(f"CLI, {PRESET} preset:           {cli_ips:8.0f} images/s", flush=True)
        store = copy_shipped(tmp / "app-store")
        extra = {"DIGITLAB_THREADS": env["DIGITLAB_THREADS"]} if "DIGITLAB_THREADS" in env else {}
        with serve_app(store, root, tmp / "streamlit.log", extra) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium(), args=LAUNCH_ARGS)
            tab = Tab(browser.new_context(viewport={"width": 1440, "height": 1100}).new_page(), url)
            page_switch_seconds(tab, rounds=1)  # warm the caches the way a first visitor would
            app_ips, intervals = dashboard_run(tab, store)
            print(f"dashboard open, {PRESET} preset: {app_ips:8.0f} images/s = {app_ips / cli_ips:.0%} of the CLI")
            print(f"chart refresh interval:        median {statistics.median(intervals):.2f} s, "
                  f"max {max(intervals):.2f} s over {len(intervals)} refreshes")
            switches = page_switch_seconds(tab)
            print(f"page switch:                   median {statistics.median(switches):.2f} s, "
                  f"max {max(switches):.2f} s over {len(switches)} switches")
            browser.close()


if __name__ == "__main__":
    main()
