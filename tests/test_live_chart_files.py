"""The live chart's files: served from a folder this process made, never from one someone else could plant."""

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import plotly

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "digitlab" / "dashboard" / "ui" / "live_chart.html"


def test_a_planted_folder_at_the_old_predictable_path_is_not_served():
    # The folder older versions reused when it held an index.html, whoever had written it.
    stamp = hashlib.sha256(PAGE.read_bytes() + plotly.__version__.encode()).hexdigest()[:12]
    planted = Path(tempfile.gettempdir()) / f"digitlab-live-chart-{stamp}"
    planted.mkdir(exist_ok=True)
    (planted / "index.html").write_text("<script>window.planted = true</script>")
    try:
        code = ("from digitlab.dashboard.ui import live_chart; import os; "
                "print(live_chart._component.path); print(os.getpid())")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
        served = Path(out.stdout.split()[0])
        assert served != planted
        # The served folder was its own: the real page, its user's alone; and it is gone when that process ends.
        assert not served.exists()
    finally:
        shutil.rmtree(planted)


def test_the_served_folder_is_private_and_holds_the_real_page():
    from digitlab.dashboard.ui import live_chart

    folder = Path(live_chart._component.path)
    mode = stat.S_IMODE(folder.stat().st_mode)
    assert mode == 0o700 and folder.stat().st_uid == os.getuid()
    assert (folder / "index.html").read_bytes() == PAGE.read_bytes()
    assert (folder / "plotly.min.js").stat().st_size > 1_000_000
