"""The acceptance run of My drawings: 30 digits drawn with the mouse in Chromium, three of each, saved through Draw's
"Save as a test drawing", then every shipped model scored on them by the CLI:

    python -m tests.e2e.draw_thirty --drawings /tmp/thirty [--shots DIR]

Each drawing is traced as a person would: the digit's pen strokes (digitlab.bench.strokes, or for one of the three
of 1, 2, 4, 7 and 9 another common way of writing it) at its own size, place and slant, with a wobbling hand, a pen
that does not quite return to where a stroke started, and one of three stroke widths. The app is served over a temporary copy of the shipped checkpoints; the drawings go to --drawings (which
must be empty or absent). With --shots, My drawings is screenshot in the light and the dark theme.
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitlab.bench.strokes import DIGIT_STROKES
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import REPO, SHIPPED, real_data_root
from tests.e2e.browser import LAUNCH_ARGS, Tab, copy_shipped, draw, find_chromium, save_drawing, serve_app

CANVAS = 280
STROKE_WIDTHS = (12, 18, 26)  # the Draw page's slider starts at 18
SLIDER_START = 18
# The canvas's toolbar (undo, redo, clear) shows over its top edge while the mouse is near it: a stroke started there
# presses the toolbar instead of drawing.
TOP_MARGIN = 30


# Other ways people write some digits (unit box, x right, y down), beside digitlab.bench.strokes' ones: a 1 with a
# flag and a foot, a 7 crossed, a 4 with an open top, a 9 with a straight stem, a 2 with a loop at its foot.
OTHER_HANDS: dict[int, list[list[tuple[float, float]]]] = {
    1: [[(0.25, 0.22), (0.58, 0.04), (0.55, 0.96)], [(0.25, 0.96), (0.85, 0.96)]],
    7: [[(0.12, 0.08), (0.88, 0.06), (0.45, 0.96)], [(0.35, 0.52), (0.82, 0.5)]],
    4: [[(0.2, 0.04), (0.12, 0.6), (0.86, 0.6)], [(0.66, 0.3), (0.64, 0.98)]],
    9: [[(0.74, 0.3), (0.6, 0.08), (0.38, 0.06), (0.24, 0.24), (0.3, 0.44), (0.52, 0.5), (0.74, 0.34),
         (0.76, 0.96)]],
    2: [[(0.16, 0.26), (0.32, 0.06), (0.6, 0.04), (0.78, 0.2), (0.72, 0.44), (0.3, 0.82), (0.2, 0.94), (0.36, 0.98),
         (0.48, 0.86), (0.58, 0.9), (0.88, 0.94)]],
}


def human_strokes(digit: int, rng: random.Random, other_hand: bool = False) -> list[list[tuple[float, float]]]:
    """The digit's strokes in canvas pixels, drawn by an unsteady hand: a size, place and slant of its own, each
    stroke resampled every few pixels with a slow wobble and a little tremor; ``other_hand`` takes the digit's
    other way of writing it, where there is one."""
    height = rng.uniform(95, 235)
    width = height * (rng.uniform(0.3, 0.45) if digit == 1 else rng.uniform(0.55, 0.85))
    left = rng.uniform(8, CANVAS - 8 - width)
    top = rng.uniform(TOP_MARGIN, CANVAS - 8 - height)
    slant = rng.uniform(-0.28, 0.28)  # a right-leaning hand pushes the top of the digit right
    strokes = []
    for stroke in (OTHER_HANDS.get(digit) if other_hand else None) or DIGIT_STROKES[digit]:
        drift = (rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03))  # strokes never meet quite where meant
        points = [(x + slant * (0.5 - y) + drift[0], y + drift[1]) for x, y in stroke]
        wobble_x = wobble_y = 0.0
        traced = []
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            length = math.hypot((x1 - x0) * width, (y1 - y0) * height)
            steps = max(1, round(length / 7))
            for i in range(steps):
                t = i / steps
                wobble_x = 0.8 * wobble_x + rng.gauss(0, 0.9)
                wobble_y = 0.8 * wobble_y + rng.gauss(0, 0.9)
                traced.append((left + (x0 + (x1 - x0) * t) * width + wobble_x,
                               top + (y0 + (y1 - y0) * t) * height + wobble_y))
        traced.append((left + points[-1][0] * width + wobble_x, top + points[-1][1] * height + wobble_y))
        strokes.append([(min(max(x, 2), CANVAS - 2), min(max(y, TOP_MARGIN - 6), CANVAS - 2)) for x, y in traced])
    return strokes


def set_stroke_width(tab: Tab, width: int, current: int) -> int:
    """Move the Stroke width slider by keyboard, as a person who prefers keys would."""
    if width != current:
        slider = tab.page.locator(tab.keyed("draw.stroke")).get_by_role("slider")
        slider.focus()
        key = "ArrowRight" if width > current else "ArrowLeft"
        for _ in range(abs(width - current)):
            slider.press(key)
        tab.wait_for_rerun()
    return width


def draw_thirty(tab: Tab, seed: int) -> None:
    rng = random.Random(seed)
    order = [(digit, variant) for variant in range(3) for digit in range(10)]
    rng.shuffle(order)
    width = SLIDER_START
    tab.open("draw")
    tab.page.wait_for_selector("text=Draw a digit on the black canvas")
    for n, (digit, variant) in enumerate(order, 1):
        width = set_stroke_width(tab, STROKE_WIDTHS[(variant + digit) % 3], width)
        strokes = human_strokes(digit, rng, other_hand=variant == 1)
        try:
            draw(tab, digit, strokes=strokes)
        except PlaywrightTimeout:  # the strokes did not reach the server (a busy machine): clear, draw it again
            print(f"{n:2d}/30 no prediction came for a {digit}; drawing it again", flush=True)
            tab.click_button("Clear")
            tab.page.wait_for_selector("text=Draw a digit on the black canvas", timeout=30000)
            draw(tab, digit, strokes=strokes)
        predicted = tab.page.locator("[data-testid='draw-prediction']").inner_text().strip()
        save_drawing(tab, digit)
        tab.page.wait_for_selector("text=Draw a digit on the black canvas", timeout=30000)  # the clean canvas
        print(f"{n:2d}/30 drew a {digit} (width {width}); the first model read {predicted}", flush=True)


def shoot(browser, url: str, out: Path) -> None:
    for theme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1400, "height": 1200}, color_scheme=theme)
        tab = Tab(context.new_page(), url).open("drawings")
        tab.page.wait_for_selector("figure[data-label]")
        tab.page.locator("[data-testid='stTable']").wait_for()
        tab.page.mouse.move(2, 2)
        time.sleep(1.5)  # let the browser finish drawing the table and the cards after the script run
        path = out / f"drawings-{theme}.png"
        tab.page.screenshot(path=str(path))
        print(f"wrote {path}", flush=True)
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drawings", type=Path, required=True, help="the DIGITLAB_DRAWINGS folder to save into")
    parser.add_argument("--shots", type=Path, help="a folder for screenshots of My drawings, light and dark")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("needs Chromium (/usr/bin/chromium) and playwright")
    if args.drawings.exists() and any(args.drawings.iterdir()):
        raise SystemExit(f"{args.drawings} is not empty: give a new folder, so that the scores are of these 30")

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        data = real_data_root()
        if data is None:  # Draw and My drawings need no MNIST; the app only wants a folder that looks like one
            from tests.fakedata import write_tiny_mnist

            data = write_tiny_mnist(Path(tmp) / "tiny-mnist")
        store = copy_shipped(Path(tmp) / "checkpoints")
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=LAUNCH_ARGS)
        with serve_app(store, data, Path(tmp) / "server.log", {"DIGITLAB_DRAWINGS": str(args.drawings)}) as url:
            context = browser.new_context(viewport={"width": 1440, "height": 1100})
            draw_thirty(Tab(context.new_page(), url), args.seed)
            context.close()
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
                shoot(browser, url, args.shots)
        browser.close()
    for run in sorted(SHIPPED.glob("shipped-*")):
        print(f"\n$ python -m digitlab eval {run.name} --drawings {args.drawings}", flush=True)
        subprocess.run([sys.executable, "-m", "digitlab", "eval", run.name, "--drawings", str(args.drawings)],
                       cwd=REPO, check=True)


if __name__ == "__main__":
    main()
