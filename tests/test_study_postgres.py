"""Studies on a real PostgreSQL server: two worker processes share one grid study; every combination runs exactly
once, and a worker killed with SIGKILL mid-trial leaves no trial lost or stuck running. The fixture initdb's a
throwaway cluster on a free port (as the postgres user when run as root: the server refuses root) and stops it."""

import glob
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from digitlab import study
from digitlab.config import TrainConfig
from digitlab.store import RunStore

pytestmark = pytest.mark.timeout(240)
INITDBS = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
TINY = TrainConfig(model="mlp", model_options={"hidden": [16]}, lr=0.01, batch_size=16, epochs=4)
HEARTBEAT = {"heartbeat_s": 1, "grace_s": 4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    if not INITDBS:
        reason = "no PostgreSQL server installed (/usr/lib/postgresql/*/bin/initdb); apt-get install postgresql"
        if os.environ.get("DIGITLAB_POSTGRES_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    bin_dir = Path(INITDBS[-1]).parent
    # Not under pytest's tmp_path: its parents are root's alone, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="digitlab-postgres-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run([*as_postgres, bin_dir / "initdb", "-D", root / "db", "-A", "trust", "-U", "digitlab"],
                   check=True, capture_output=True)
    pg_ctl = [*as_postgres, bin_dir / "pg_ctl", "-D", root / "db"]
    subprocess.run([*pg_ctl, "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "-l", root / "log", "-w",
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://digitlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_grid_and_a_killed_one_loses_nothing(postgres_url, tiny_data, tmp_path):
    spec = study.define_study("pg-grid", TINY, validation_size=50,
                              grid={"lr": [0.005, 0.01, 0.02], "batch_size": [16, 32]})
    storage = study.open_storage(postgres_url, **HEARTBEAT)
    study.create_or_resume(spec, storage)
    stop = multiprocessing.get_context("spawn").Event()
    doomed, survivor = study.spawn_workers(spec.name, postgres_url, tiny_data, tmp_path, 2, stop, threads=1,
                                           **HEARTBEAT)
    store = RunStore(tmp_path)
    deadline = time.monotonic() + 120
    while not any(r.status == "running" and r.data["pid"] == doomed.pid for r in store.list().runs):
        assert time.monotonic() < deadline and doomed.is_alive(), "the first worker never started a trial"
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)
    survivor.join(120)
    # run waits for every trial: it fails the dead worker's stale trial, and trains its retry itself.
    summary = study.run_study(spec, tiny_data, tmp_path, postgres_url, workers=1, **HEARTBEAT)

    assert summary.line().startswith("study=pg-grid trials=6 complete=6 pruned=0 failed=0 best_val=")
    found, _ = study.load_study(spec.name, storage)
    states = [t.state.name for t in found.get_trials()]
    assert "RUNNING" not in states and "WAITING" not in states and states.count("FAIL") == 1
    runs = [r for r in store.list().runs if r.study and r.study["name"] == "pg-grid"]
    completed = sorted((r.config.lr, r.config.batch_size) for r in runs if r.status == "completed")
    assert completed == sorted((lr, b) for lr in (0.005, 0.01, 0.02) for b in (16, 32))
    killed = [r for r in runs if r.status != "completed"]
    assert [r.status for r in killed] == ["interrupted"] and killed[0].data["pid"] == doomed.pid
    assert sorted(r.study["trial"] for r in runs if r.status == "completed") == [row.number for row in summary.rows]
