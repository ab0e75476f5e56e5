"""The live chart's files: served from a folder this process made, never from one someone else could plant."""

import os
import stat
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "digitlab" / "dashboard" / "ui" / "live_chart.html"


def test_the_served_folder_is_gone_when_its_process_ends():
    code = "from digitlab.dashboard.ui import live_chart; print(live_chart._component.path)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    served = Path(out.stdout.split()[0])
    assert served.name.startswith("digitlab-live-chart-") and not served.exists()


def test_the_served_folder_is_private_and_holds_the_real_page():
    from digitlab.dashboard.ui import live_chart

    folder = Path(live_chart._component.path)
    mode = stat.S_IMODE(folder.stat().st_mode)
    assert mode == 0o700 and folder.stat().st_uid == os.getuid()
    assert (folder / "index.html").read_bytes() == PAGE.read_bytes()
    assert (folder / "plotly.min.js").stat().st_size > 1_000_000
