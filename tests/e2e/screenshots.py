"""The README's screenshots, made again whenever the pages change:

    DIGITLAB_DATA=../shared/data python -m tests.e2e.screenshots [--out .github/screenshots]

It serves the app over a temporary copy of the shipped checkpoints, trains the fast preset twice (seeds 0 and 1),
and in the light and the dark theme takes: Home, Train mid-run, the classroom race mid-way and at its end, the Class
board (sixty drawings by draw_thirty's unsteady hand, a few turned far), Compare
(the runs beside the shipped ones), Compare
grouped (the two fast runs as one band), Errors, Draw (a 7 drawn with the mouse) and Inside (that 7, the four
shipped models side by side: at the top, and at their feature maps; then its Perturb and Adversarial views).
``--only inside draw`` takes just those pages
(and trains nothing when Train and Compare are not among them). Needs Chromium and the real MNIST, as the browser
tests do.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digitlab.bench.strokes import render_strokes
from digitlab.data import data_root
from digitlab.drawings import DrawingStore
from tests.conftest import REPO, real_data_root
from tests.e2e.browser import LAUNCH_ARGS, Tab, copy_shipped, draw, find_chromium, serve_app
from tests.e2e.draw_thirty import STROKE_WIDTHS, human_strokes

VIEWPORT = {"width": 1400, "height": 1200}
THEMES = ("light", "dark")


def settle(tab: Tab, seconds: float = 1.5) -> None:
    """Let charts finish drawing after the script run has ended."""
    tab.wait_for_idle()
    time.sleep(seconds)


def shoot(tab: Tab, out: Path, page: str, theme: str, scroll_to: str | None = None) -> Path:
    """A screenshot of the page from its top (or from the element ``scroll_to`` selects), the mouse out of the way
    (no hover toolbars)."""
    tab.page.mouse.move(2, 2)
    tab.page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollTo(0, 0)")
    if scroll_to:
        tab.page.locator(scroll_to).first.evaluate("element => element.scrollIntoView({block: 'start'})")
    time.sleep(0.3)
    path = out / f"{page}-{theme}.png"
    tab.page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)
    return path


def train_mid_run(tab: Tab, seed: int) -> None:
    tab.open("train")
    tab.enter_text("train.seed", str(seed))
    tab.enter_text("train.name", f"fast, seed {seed}")
    tab.button("train.start").click()
    tab.button("train.stop").wait_for(timeout=30000)
    deadline = time.time() + 60
    while time.time() < deadline:  # a third of the way: curves with some length, the progress bar half full
        text = tab.live_progress("train.charts") or ""
        lengths = tab.trace_lengths("train.charts", "batch_loss") or [0]
        if lengths[0] >= 40 and "batch" in text:
            return
        time.sleep(0.2)
    raise RuntimeError("training did not get going within 60 s")


def inside_of_the_drawing(tab: Tab) -> None:
    """From Draw's drawing to Inside, every shipped model's column complete (the first visit embeds the training
    images of each)."""
    tab.page.get_by_role("button", name="Look inside this drawing", exact=True).click()
    tab.page.wait_for_url("**/inside", timeout=30000)
    tab.wait_for_idle(600)
    tab.page.locator("[data-testid='inside-neighbours']").nth(3).wait_for(timeout=600000)
    settle(tab, 3)


def class_drawings(folder: Path, count: int = 60) -> None:
    """A class's worth of drawings in ``folder``: every digit six times by an unsteady hand (draw_thirty's), in its
    own size, place and slant, one in three written the other common way, in the three stroke widths; one in seven
    dashed off, turned 45 to 70 degrees (what a board is for: the drawings that trip the models up)."""
    rng = random.Random(0)
    drawings = DrawingStore(folder)
    for n in range(count):
        digit, width = n % 10, STROKE_WIDTHS[n % 3]
        rgba = render_strokes(human_strokes(digit, rng, other_hand=n % 3 == 1), width, background="black")
        if n % 7 == 6:
            turn = rng.choice((-1, 1)) * rng.uniform(45, 70)
            rgba = np.asarray(Image.fromarray(rgba).rotate(turn, fillcolor=(0, 0, 0, 255)))
        drawings.save(rgba, digit, width)


def race(tab: Tab, out: Path, theme: str) -> None:
    """The classroom race from Train: shot a third of the way (every curve on its way), and at its end."""
    tab.open("train")
    tab.page.get_by_role("tab", name="Race several").click()
    tab.button("race.set.classroom").click()
    tab.wait_for_rerun()
    tab.enter_text("race.name", f"Classroom race ({theme})")
    time.sleep(10)  # its four trainers get ready
    tab.button("race.start").click()
    tab.button("race.stop_all").wait_for(timeout=30000)  # this race's view, not the last one's
    deadline = time.time() + 120
    while time.time() < deadline:  # every run on its way: the slowest (the ResNet, last) has a few held-out checks
        lengths = tab.trace_lengths("train.charts", "acc") or [0]
        if len(lengths) == 4 and lengths[-1] >= 3:
            break
        time.sleep(0.5)
    shoot(tab, out, "race-mid", theme)
    tab.button("race.compare").wait_for(timeout=300000)
    settle(tab, 2)
    shoot(tab, out, "race-end", theme)


PAGES = ("train", "race", "compare", "errors", "compare-grouped", "draw", "inside", "inside-maps", "perturb",
         "adversarial", "home", "board")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".github" / "screenshots")
    parser.add_argument("--only", nargs="+", choices=PAGES, default=PAGES, metavar="PAGE",
                        help=f"the pages to shoot, of: {', '.join(PAGES)}")
    args = parser.parse_args()
    wanted = set(args.only)
    chromium = find_chromium()
    if chromium is None or real_data_root() is None:
        raise SystemExit(f"needs Chromium and the real MNIST in {data_root()} (set DIGITLAB_DATA)")
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        store = copy_shipped(Path(tmp) / "checkpoints")
        if "board" in wanted:
            class_drawings(Path(tmp) / "drawings")  # the folder the server keeps its drawings in
        with serve_app(store, real_data_root(), Path(tmp) / "server.log") as url:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=LAUNCH_ARGS)
            tabs = {}
            for seed, theme in enumerate(THEMES):  # a fast run per theme, shot mid-run: the same config twice
                context = browser.new_context(viewport=VIEWPORT, color_scheme=theme)
                tabs[theme] = Tab(context.new_page(), url)
                if wanted & {"train", "compare", "compare-grouped"}:
                    train_mid_run(tabs[theme], seed)
                    if "train" in wanted:
                        shoot(tabs[theme], args.out, "train", theme)
                    tabs[theme].page.wait_for_selector("text=Test accuracy", timeout=120000)  # for Compare
            for theme, tab in tabs.items():
                if "home" in wanted:
                    tab.open()
                    settle(tab)
                    shoot(tab, args.out, "home", theme)
                if "race" in wanted:
                    race(tab, args.out, theme)
                if "board" in wanted:
                    tab.open("board")
                    tab.page.wait_for_selector("text=The drawings most models get wrong", timeout=60000)
                    tab.page.locator(f"{tab.keyed('board.per_digit')} .js-plotly-plot").wait_for()
                    settle(tab)
                    shoot(tab, args.out, "board", theme)
                for page, ready in (("compare", "[data-testid='stTable']"),
                                    ("errors", "text=test images misclassified")):
                    if page in wanted:
                        tab.open(page)
                        tab.page.wait_for_selector(ready, timeout=60000)
                        settle(tab)
                        shoot(tab, args.out, page, theme)
                if "compare-grouped" in wanted:
                    tab.open("compare")
                    tab.page.get_by_text("Group repeats", exact=False).click()  # the two fast runs: one band
                    tab.wait_for_rerun()
                    tab.page.locator(f"{tab.keyed('compare.chart.test_acc')} .js-plotly-plot").wait_for()
                    settle(tab)
                    shoot(tab, args.out, "compare-grouped", theme, scroll_to=tab.keyed("compare.view"))
                if wanted & {"draw", "inside", "inside-maps", "perturb", "adversarial"}:
                    tab.open("draw")
                    draw(tab, 7)
                    settle(tab)
                    if "draw" in wanted:
                        shoot(tab, args.out, "draw", theme)
                if wanted & {"inside", "inside-maps", "perturb", "adversarial"}:
                    inside_of_the_drawing(tab)
                    if "inside" in wanted:
                        shoot(tab, args.out, "inside", theme)
                    if "inside-maps" in wanted:
                        shoot(tab, args.out, "inside-maps", theme, scroll_to="text=Feature maps")
                    for view in ("Perturb", "Adversarial"):  # the robustness lab's views of the same drawing
                        if view.lower() in wanted:
                            tab.page.get_by_role("tab", name=view, exact=True).click()
                            tab.wait_for_rerun(120)
                            settle(tab, 2)
                            shoot(tab, args.out, view.lower(), theme)
            browser.close()


if __name__ == "__main__":
    main()
