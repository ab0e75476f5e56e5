"""The dashboard's cached loaders: the runs listing every page reads on every rerun is read again only when it can
have changed."""

import json
import shutil

from digitlab.dashboard.ui import loaders
from digitlab.store import RUN_FILE, run_lock, write_json


def shown(run_id: str):
    return next(record for record in loaders.list_runs().runs if record.id == run_id)


def test_the_runs_listing_is_read_again_when_a_runs_file_changes_and_while_a_run_is_running(store_with_shipped,
                                                                                            monkeypatch):
    monkeypatch.setenv("DIGITLAB_CHECKPOINTS", str(store_with_shipped))
    first = loaders.list_runs()
    assert loaders.list_runs() is first  # nothing changed: no file is read again

    run = store_with_shipped / "shipped-mlp"
    write_json(run / RUN_FILE, {**json.loads((run / RUN_FILE).read_text()), "name": "renamed"})
    assert shown("shipped-mlp").name == "renamed"

    racing = store_with_shipped / "racing"
    shutil.copytree(run, racing)
    data = json.loads((racing / RUN_FILE).read_text())
    write_json(racing / RUN_FILE, {**data, "shipped": False, "status": "running", "finished_at": None})
    with run_lock(racing, "the test's trainer holds it"):  # a live trainer holds its run's lock
        assert shown("racing").status == "running"
        assert shown("racing").status == "running"
    # The trainer is gone and no file has changed: the listing still sees it, and settles the run.
    assert shown("racing").status == "interrupted"
