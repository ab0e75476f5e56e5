"""A trainer outlives its server: after a kill -9 of the server, a new server over the same store shows the
training still updating on the Train page, and its Stop stops it."""

import json
import os
import signal

import pytest
from playwright.sync_api import expect

from digitlab.store import RunStore
from tests.e2e.browser import Tab, copy_shipped, serve_app, wait_until
from tests.e2e.test_train import loss_points, metric, start_training


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])  # the field after the state, past "(name)"


def test_a_restarted_server_adopts_the_training_and_stops_it(browser, e2e_data_root, tmp_path):
    if not os.path.isdir("/proc"):
        pytest.skip("finding the server of a trainer needs /proc")
    store = copy_shipped(tmp_path / "checkpoints")
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    trainer = run_id = None
    try:
        with serve_app(store, e2e_data_root, tmp_path / "first-server.log") as url:
            tab = Tab(context.new_page(), url).open("train")
            # Slow enough on either data: the tiny MNIST's 300 images give 75 batches an epoch.
            tab.enter_text("train.batch_size", "4")
            start_training(tab, epochs=500, name="e2e adopted")
            wait_until(lambda: loss_points(tab) >= 5, 60, "training to start")
            (run_json,) = (path for path in store.glob("*/run.json") if not path.parent.name.startswith("shipped-"))
            run_id, trainer = run_json.parent.name, json.loads(run_json.read_text())["pid"]
            server = parent_of(trainer)
            with open(f"/proc/{server}/cmdline") as cmdline:
                assert "streamlit" in cmdline.read()
            os.kill(server, signal.SIGKILL)
            tab.page.close()
        assert RunStore(store).read(run_id).status == "running"  # the trainer goes on alone

        with serve_app(store, e2e_data_root, tmp_path / "second-server.log") as url:
            tab = Tab(context.new_page(), url).open("train")
            tab.button("train.stop").wait_for(timeout=30000)
            first = wait_until(lambda: loss_points(tab), 30, "the adopted run's chart")
            wait_until(lambda: loss_points(tab) > first, 30, "the adopted run's chart to keep updating")
            expect(tab.page.locator("h3").first).to_contain_text("e2e adopted")
            tab.button("train.stop").click()
            tab.page.get_by_text("Status", exact=True).wait_for(timeout=15000)
            assert metric(tab, "Status") == "stopped"
            assert tab.exceptions() == []
        assert RunStore(store).read(run_id).status == "stopped"
    finally:
        context.close()
        if trainer is not None and RunStore(store).read(run_id).status == "running":
            os.kill(trainer, signal.SIGKILL)  # a failed test leaves no trainer behind
