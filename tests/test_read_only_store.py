"""Read-only (classroom) mode over a store as a new user finds it: viewing every page writes, removes and renames
nothing under the run store, and a store that cannot be written to is shown all the same."""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitlab.store import RunStore
from tests.test_app import PAGES, app_env, assert_clean, canvas, open_app  # noqa: F401  (fixtures)

DEAD_RUN = "20250101-000000-mlp-dead"


def dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


@pytest.fixture
def lived_in_store(app_env, store_with_shipped, tmp_path, monkeypatch) -> Path:  # noqa: F811
    """The shipped runs, the trash folder of a delete that crashed, and a run left "running" by a trainer that died
    (with the temporary file of a write it never finished), in read-only mode; caches and drawings in tmp_path."""
    root = store_with_shipped
    trash = root / ".deleted-old"
    trash.mkdir()
    (trash / "run.json").write_text("{}")
    dead = root / DEAD_RUN
    shutil.copytree(root / "shipped-mlp", dead)
    record = json.loads((dead / "run.json").read_text())
    record.pop("shipped")
    record.update(name="died mid-run", status="running", message="", pid=dead_pid(), finished_at=None, final={})
    (dead / "run.json").write_text(json.dumps(record))
    leftover = dead / ".run.json.0badf00d.tmp"
    leftover.write_text("{half a wri")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGITLAB_DRAWINGS", str(tmp_path / "drawings"))
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    return app_env(root)


def snapshot(root: Path) -> tuple[dict[str, bytes], set[str]]:
    """Every file under ``root`` with its bytes, and every folder."""
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    folders = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}
    return files, folders


def changes(before, after) -> dict[str, list[str]]:
    """What differs between two snapshots: files added, removed or rewritten, folders added or removed."""
    (files_before, folders_before), (files_after, folders_after) = before, after
    common = set(files_before) & set(files_after)
    return {"files added": sorted(set(files_after) - set(files_before)),
            "files removed": sorted(set(files_before) - set(files_after)),
            "files rewritten": sorted(n for n in common if files_after[n] != files_before[n]),
            "folders added": sorted(folders_after - folders_before),
            "folders removed": sorted(folders_before - folders_after)}


NO_CHANGES = {"files added": [], "files removed": [], "files rewritten": [], "folders added": [],
              "folders removed": []}


def render_every_page() -> None:
    for page in [None, *PAGES]:
        assert_clean(open_app(page))


def test_viewing_every_page_in_read_only_mode_changes_nothing_in_the_store(lived_in_store, canvas,  # noqa: F811
                                                                          tmp_path):
    before = snapshot(lived_in_store)
    render_every_page()
    assert changes(before, snapshot(lived_in_store)) == NO_CHANGES
    assert {r.id: r.status for r in RunStore(lived_in_store).list().runs}[DEAD_RUN] == "interrupted"
    cache = tmp_path / "cache"
    assert list(cache.glob("*/predictions.safetensors")) and list(cache.glob("*/train.safetensors"))  # kept there


@contextlib.contextmanager
def unwritable(folder: Path, monkeypatch) -> Iterator[None]:
    """``folder`` and everything under it made read-only (chmod -R a-w), and made writable again after. Where that
    does not stop writes (root, or CAP_DAC_OVERRIDE), Python's ways of changing files fail there instead, as on a
    read-only file system (errno 30): open and os.open for writing, renames, removals, mkdir and rmtree."""
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for path, mode in modes.items():
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        probe = folder / ".probe"
        try:
            probe.touch()
        except PermissionError:
            pass
        else:
            probe.unlink()
            _refuse_python_writes(folder, monkeypatch)
        yield
    finally:
        for path, mode in modes.items():
            if path.exists():
                path.chmod(mode)


def _refuse_python_writes(folder: Path, monkeypatch) -> None:
    folder = folder.resolve()

    def check(path) -> None:
        if isinstance(path, int):  # a file descriptor
            return
        resolved = Path(os.fspath(path)).resolve()
        if resolved == folder or folder in resolved.parents:
            raise OSError(30, "Read-only file system", str(path))

    real_open, real_os_open, real_rmtree = builtins.open, os.open, shutil.rmtree

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            check(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            check(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_rmtree(path, ignore_errors=False, *args, **kwargs):
        try:
            check(path)
        except OSError:
            if ignore_errors:  # every removal would fail, and be ignored
                return
            raise
        return real_rmtree(path, ignore_errors, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(shutil, "rmtree", guarded_rmtree)
    for name, paths in (("replace", 2), ("rename", 2), ("unlink", 1), ("remove", 1), ("rmdir", 1), ("mkdir", 1)):
        real = getattr(os, name)

        def guarded(*args, _real=real, _paths=paths, **kwargs):
            for path in args[:_paths]:
                check(path)
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, guarded)


@pytest.mark.parametrize("read_only_mode", [True, False], ids=["read-only mode", "writable mode"])
def test_a_store_that_cannot_be_written_to_shows_every_page(lived_in_store, canvas, monkeypatch,  # noqa: F811
                                                            read_only_mode):
    if not read_only_mode:
        monkeypatch.delenv("DIGITLAB_READ_ONLY")
    before = snapshot(lived_in_store)
    with unwritable(lived_in_store, monkeypatch):
        render_every_page()
    assert changes(before, snapshot(lived_in_store)) == NO_CHANGES
