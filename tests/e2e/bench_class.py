"""What one classroom server holds: N sessions on Draw drawing a digit and adding it to the class collection, all at
once, round after round, on a classroom server (read-only, DIGITLAB_CLASS=1) over the shipped checkpoints:

- the time from each pen-up to the new prediction (p50, p95, worst): on screen for the Chromium tabs, as received
  for the light clients;
- the additions: how many the pages said were added, how many drawings the collection holds after (none lost,
  none kept twice), and the rate;
- the server's memory (RSS) against the number of sessions, and where the CPU went (server, Chromium, light
  clients).

    python -m tests.e2e.bench_class [--sessions 10 20 30] [--browsers 6] [--rounds 3]

Up to --browsers sessions are Chromium tabs (a window each, in one Chromium), which draw their strokes with the
mouse as a person does; the others are light clients (tests/e2e/light_session.py) that send the server what a tab
sends on each pen-up and click, over Streamlit's own protocol. On this 2-core machine a Chromium tab costs about a
sixth of a core while it draws, so thirty of them measure Chromium, not the server: in a class each student's
browser runs on their own device. All sessions draw at the same moment (asyncio), so the server answers them
together.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil

from digitlab.bench.strokes import stroke_points
from digitlab.drawings import DrawingStore
from tests.e2e.browser import LAUNCH_ARGS, copy_shipped, find_chromium, serve_app
from tests.e2e.light_session import LightSession
from tests.fakedata import write_tiny_mnist

# Installed in each tab: on every pen-up, note the time; when the page shows the models' answer to the new ink (the
# 28 x 28 image they see, which every stroke changes, drawn in the same script run as their answers), note how long
# it took. Looked at by the page itself (a MutationObserver), so that measuring takes no round trip.
WATCH_PREDICTION = """() => {
    window.roundTrips = [];
    let penUp = null, shown = null;
    window.predictionPending = () => penUp !== null;
    const read = () => { const seen = document.querySelector("[data-testid='stImage'] img");
                         const answer = document.querySelector("[data-testid='draw-prediction']");
                         return seen && answer ? seen.getAttribute("src") : null; };
    document.addEventListener("mouseup", () => { penUp = performance.now(); shown = read(); }, true);
    new MutationObserver(() => {
        if (penUp === null) return;
        const now = read();
        if (now !== null && now !== shown) { window.roundTrips.push(performance.now() - penUp); penUp = null; }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
CANVAS = 280


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def server_process(url: str) -> psutil.Process:
    port = urlparse(url).port
    return next(p for p in psutil.process_iter(["cmdline"]) if f"--server.port={port}" in " ".join(p.info["cmdline"]
                                                                                                   or []))


async def canvas_origin(page) -> dict:
    for _ in range(150):
        for handle in await page.locator("canvas").all():
            box = await handle.bounding_box()
            if box and abs(box["width"] - CANVAS) < 2 and abs(box["height"] - CANVAS) < 2:
                return box
        await asyncio.sleep(0.2)
    raise RuntimeError("no canvas on Draw")


async def open_draw(browser, url: str):
    # A context (a window) per tab: Chromium paints only the front page of a window, and a mouse event on a page it
    # does not paint waits for a frame that does not come.
    context = await browser.new_context(viewport={"width": 1300, "height": 1000})
    page = await context.new_page()
    await page.goto(f"{url}/draw")
    await page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120000)
    await canvas_origin(page)
    await page.evaluate(WATCH_PREDICTION)
    return page


async def draw_and_add(page, digit: int) -> bool:
    """Draw ``digit`` with the mouse, wait for its prediction, add it; True if the page said it was added."""
    origin = await canvas_origin(page)
    for stroke in stroke_points(digit, (85, 45, 195, 235)):
        await page.mouse.move(origin["x"] + stroke[0][0], origin["y"] + stroke[0][1])
        await page.mouse.down()
        for x, y in stroke[1:]:
            await page.mouse.move(origin["x"] + x, origin["y"] + y, steps=3)
        await page.mouse.up()
    await page.wait_for_function("!window.predictionPending()", timeout=120000)
    await page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120000)
    await page.get_by_role("button", name="Add to the class collection").click()
    try:
        await page.wait_for_selector("text=to the class collection: the", timeout=120000)
        return True
    except Exception:
        return False


def quantiles(seconds: list[float]) -> str:
    if not seconds:
        return "none"
    ranked = sorted(seconds)
    p95 = ranked[math.ceil(0.95 * len(ranked)) - 1]  # nearest rank
    return (f"p50 {statistics.median(ranked):.2f} s, p95 {p95:.2f} s, worst {ranked[-1]:.2f} s "
            f"over {len(ranked)} pen-ups")


async def light_draw_and_add(session: LightSession, digit: int, trips: list[float]) -> bool:
    trips += await session.draw(digit)
    added, _ = await session.add()
    return added


async def run(sessions: list[int], browsers: int, rounds: int) -> None:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = copy_shipped(tmp / "checkpoints")
        folder = tmp / "drawings"
        env = {"DIGITLAB_READ_ONLY": "1", "DIGITLAB_CLASS": "1"}
        with serve_app(store, write_tiny_mnist(tmp / "mnist"), tmp / "server.log", env) as url:
            server = server_process(url)
            print(f"server RSS at start: {server.memory_info().rss / 2**20:.0f} MB", flush=True)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=find_chromium(), args=LAUNCH_ARGS)
                pages, lights, said_in_all = [], [], 0
                for count in sessions:
                    tabs = min(browsers, count)
                    pages += await asyncio.gather(*(open_draw(browser, url) for _ in range(tabs - len(pages))))
                    fresh = [LightSession(url, "draw") for _ in range(count - tabs - len(lights))]
                    await asyncio.gather(*(light.open() for light in fresh))
                    lights += fresh
                    print(f"{count} sessions on Draw ({len(pages)} Chromium tabs, {len(lights)} light clients): "
                          f"server RSS {server.memory_info().rss / 2**20:.0f} MB", flush=True)
                    for page in pages:
                        await page.evaluate("window.roundTrips = []")
                    chromium = [p for p in psutil.process_iter(["name"]) if "chrom" in (p.info["name"] or "")]
                    me = psutil.Process()
                    before = [cpu_seconds(side) for side in ([server], chromium, [me])]
                    started, light_trips, said_added = time.perf_counter(), [], 0
                    for round_ in range(rounds):
                        digits = [(i + round_) % 10 for i in range(count)]
                        results = await asyncio.gather(
                            *(draw_and_add(page, digit) for page, digit in zip(pages, digits)),
                            *(light_draw_and_add(light, digit, light_trips)
                              for light, digit in zip(lights, digits[len(pages):])))
                        said_added += sum(results)
                        await asyncio.sleep(2.1)  # each session may add one drawing every 2 s
                    seconds = time.perf_counter() - started
                    server_cpu, chromium_cpu, light_cpu = (cpu_seconds(side) - was for side, was
                                                           in zip(([server], chromium, [me]), before))
                    tab_trips = [t / 1000 for times in await asyncio.gather(
                        *(page.evaluate("window.roundTrips") for page in pages)) for t in times]
                    said_in_all += said_added
                    # Only this benchmark adds to the collection, which starts empty.
                    kept = len(DrawingStore(folder).list().drawings)
                    print(f"  pen-up -> prediction on screen, Chromium tabs: {quantiles(tab_trips)}", flush=True)
                    print(f"  pen-up -> prediction received, light clients: {quantiles(light_trips)}", flush=True)
                    print(f"  additions: {said_added} of {count * rounds} said added, "
                          f"{said_added / seconds:.1f} additions/s over {seconds:.0f} s; the collection holds "
                          f"{kept} drawings, {said_in_all} said added in all: {max(0, said_in_all - kept)} lost, "
                          f"{max(0, kept - said_in_all)} kept twice; server RSS "
                          f"{server.memory_info().rss / 2**20:.0f} MB", flush=True)
                    print(f"  CPU over the step ({psutil.cpu_count()} cores): server {server_cpu / seconds:.2f} cores,"
                          f" Chromium {chromium_cpu / seconds:.2f}, light clients {light_cpu / seconds:.2f}",
                          flush=True)
                await asyncio.gather(*(light.close() for light in lights))
                await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 20, 30],
                        help="sessions open at each step (growing): 10 20 30")
    parser.add_argument("--browsers", type=int, default=6,
                        help="how many of them are Chromium tabs (the rest are light clients): 6")
    parser.add_argument("--rounds", type=int, default=3, help="drawings each session adds at each step")
    args = parser.parse_args()
    asyncio.run(run(sorted(args.sessions), args.browsers, args.rounds))


if __name__ == "__main__":
    main()
