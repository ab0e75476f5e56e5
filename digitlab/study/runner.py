"""Running a whole study: this process as its first worker, and spawned worker processes beside it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable

import optuna

from digitlab.data import MNIST, load_mnist
from digitlab.device import cpu_threads
from digitlab.store import RunStore, checkpoints_root
from digitlab.study.spec import StudySpec
from digitlab.study.storage import HEARTBEAT_S, create_or_resume, open_storage, storage_url
from digitlab.study.summary import Summary, summarize
from digitlab.study.trials import unfinished, work

POLL_S = 1.0
# Measured on the 2-core machine (`python -m digitlab bench --study-workers`, README "Studies"): one worker with
# both threads beats two workers of one thread each, for the fast preset and for seed-cnn.
DEFAULT_WORKERS = 1


def _worker_main(name: str, url: str, data_root: str, out: str, threads: int, heartbeat_s: int,
                 grace_s: int | None, stop) -> None:
    """A spawned worker process: its own torch threads, its own storage connection; Ctrl-C reaches it through
    ``stop``, set by its parent, so it ends its run cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["DIGITLAB_THREADS"] = str(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url, heartbeat_s=heartbeat_s, grace_s=grace_s)
    work(name, storage, load_mnist(data_root, download=False), RunStore(out), stop)


def spawn_workers(name: str, url: str, data: MNIST, out: str | os.PathLike, workers: int, stop,
                  threads: int | None = None, heartbeat_s: int = HEARTBEAT_S,
                  grace_s: int | None = None) -> list[multiprocessing.Process]:
    """Start ``workers`` processes on this study (spawned: no forked torch state); ``stop`` is a
    multiprocessing Event from the spawn context. Threads per worker default to the cores shared out."""
    threads = threads or max(1, cpu_threads() // workers)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_main, daemon=True,
                                 args=(name, url, str(data.root), str(checkpoints_root(out)), threads, heartbeat_s,
                                       grace_s, stop))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    return processes


def wait_for_workers(processes: list[multiprocessing.Process], on_tick: Callable[[], None] | None = None) -> None:
    """Until every worker process has ended, calling ``on_tick()`` every POLL_S (a progress bar, a page)."""
    while any(p.is_alive() for p in processes):
        if on_tick:
            on_tick()
        time.sleep(POLL_S)


def run_study(spec: StudySpec, data: MNIST, out: str | os.PathLike | None = None, storage: str | None = None,
              workers: int = DEFAULT_WORKERS, threads: int | None = None, stop=None,
              on_progress: Callable[[int, int], None] | None = None, heartbeat_s: int = HEARTBEAT_S,
              grace_s: int | None = None) -> Summary:
    """Create or resume ``spec`` and train it with ``workers`` workers: this process (it has torch and ``data``
    loaded already) and ``workers - 1`` spawned ones. Then wait until every trial has ended, those of other machines'
    ``work`` too, and return its summary. ``on_progress(done, total)`` follows the configurations as they end;
    ``stop`` ends every worker after its current batch."""
    url = storage_url(storage, out)
    optuna_storage = open_storage(url, heartbeat_s=heartbeat_s, grace_s=grace_s)
    study = create_or_resume(spec, optuna_storage)
    context = multiprocessing.get_context("spawn")
    stop = stop or context.Event()
    progress = (lambda: on_progress(summarize(study, spec).ended, spec.total)) if on_progress else None
    processes = []
    if workers > 1:
        threads = threads or max(1, cpu_threads() // workers)
        processes = spawn_workers(spec.name, url, data, out or checkpoints_root(), workers - 1, stop, threads,
                                  heartbeat_s, grace_s)
    threads_before = os.environ.get("DIGITLAB_THREADS")
    if threads:
        os.environ["DIGITLAB_THREADS"] = str(threads)
    try:
        # Work as the first worker; then wait for the trials of the other workers, taking over the retries of the
        # dead ones' trials.
        while not stop.is_set():
            work(spec.name, optuna_storage, data, RunStore(out), stop, progress)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            if unfinished(study) == (0, 0):
                break
            if progress:
                progress()
            time.sleep(POLL_S)
        wait_for_workers(processes, progress)
    finally:
        if threads_before is None:
            os.environ.pop("DIGITLAB_THREADS", None)
        else:
            os.environ["DIGITLAB_THREADS"] = threads_before
    if progress:
        progress()
    return summarize(study, spec)
