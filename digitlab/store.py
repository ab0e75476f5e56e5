"""The run store: one folder per run under checkpoints/, holding weights.safetensors and run.json.

Every write is atomic (a temporary file, then a rename), a run being trained is written at each epoch end, and a
run left "running" by a dead process is marked "interrupted" the next time anyone looks. Nothing is unpickled.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from digitlab.config import TrainConfig
from digitlab.models import UnknownModelError, create_model
from digitlab.schema import FORMAT, SchemaError, check_record, check_weights

try:
    import fcntl
except ImportError:  # Windows: liveness falls back to the process id
    fcntl = None

RUN_FILE = "run.json"
WEIGHTS_FILE = "weights.safetensors"
LOCK_FILE = ".lock"
SHIPPED_PREFIX = "shipped-"
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class RunError(Exception):
    """A run that cannot be read or used; the message says why and what to do."""


class InvalidRunIdError(RunError, ValueError):
    pass


class ProtectedRunError(RunError, PermissionError):
    pass


def checkpoints_root(path: str | os.PathLike | None = None) -> Path:
    """An explicit folder, else DIGITLAB_CHECKPOINTS, else checkpoints/ beside the digitlab package."""
    return Path(path or os.environ.get("DIGITLAB_CHECKPOINTS") or Path(__file__).resolve().parent.parent / "checkpoints")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then rename over ``path``: readers see the old or the new file,
    never half of one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, allow_nan=True)))


def save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))


@dataclass(frozen=True)
class RunRecord:
    """What run.json says about a run, checked on read against digitlab.schema: the properties trust its types."""

    id: str
    path: Path
    data: dict[str, Any]
    config: TrainConfig

    @property
    def name(self) -> str:
        """The name given to the run, else its architecture and start time, e.g. "cnn Nov 25 07:17:31"."""
        if self.data["name"].strip():
            return self.data["name"]
        created = dt.datetime.fromisoformat(self.data["created_at"]).astimezone()
        return f"{self.config.model} {created:%b %d %H:%M:%S}"

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def message(self) -> str:
        return self.data["message"]

    @property
    def epochs(self) -> list[dict[str, float]]:
        return self.data["epochs"]

    @property
    def batches(self) -> dict[str, list[float]]:
        return self.data["batches"]

    @property
    def final(self) -> dict[str, float]:
        """test_acc, test_loss, train_s, epochs_done of the finished run ({} while it runs)."""
        return self.data["final"]

    @property
    def shipped(self) -> bool:
        return bool(self.data.get("shipped"))

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def has_weights(self) -> bool:
        return self.weights_path.is_file()

    @property
    def test_acc(self) -> float | None:
        if "test_acc" in self.final:
            return self.final["test_acc"]
        return self.epochs[-1]["test_acc"] if self.epochs else None

    @property
    def usable(self) -> bool:
        """Has weights worth predicting with: not diverged, and trained for at least part of an epoch."""
        return self.has_weights and self.status != "diverged"


@dataclass(frozen=True)
class LoadedRun:
    record: RunRecord
    model: nn.Module  # eval mode, on the CPU

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def config(self) -> TrainConfig:
        return self.record.config

    @property
    def metrics(self) -> dict[str, Any]:
        return {"epochs": self.record.epochs, "final": self.record.final, "batches": self.record.batches}


@dataclass(frozen=True)
class Listing:
    runs: list[RunRecord]
    unreadable: list[tuple[Path, str]]  # (folder, reason)


class RunStore:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = checkpoints_root(root)

    def path_for(self, run_id: str) -> Path:
        """The folder of ``run_id``; ids that are not plain names (``..``, slashes, hidden) are refused."""
        if not isinstance(run_id, str) or not _ID_PATTERN.fullmatch(run_id) or ".." in run_id:
            raise InvalidRunIdError(
                f"invalid run id {run_id!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit"
            )
        path = self.root / run_id
        if path.resolve().parent != self.root.resolve():
            raise InvalidRunIdError(f"run id {run_id!r} points outside {self.root}")
        return path

    def new_run_id(self, config: TrainConfig) -> str:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{config.model}-{secrets.token_hex(2)}"

    def create_folder(self, config: TrainConfig) -> tuple[str, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            run_id = self.new_run_id(config)
            path = self.path_for(run_id)
            try:
                path.mkdir()
                return run_id, path
            except FileExistsError:
                continue

    def read(self, run_id: str) -> RunRecord:
        return self._read(self.path_for(run_id))

    def _read(self, path: Path) -> RunRecord:
        run_file = path / RUN_FILE
        if not path.is_dir():
            raise RunError(f"no run {path.name!r} in {path.parent}")
        if not run_file.is_file():
            found = ", ".join(sorted(p.name for p in path.iterdir())[:5]) or "nothing"
            raise RunError(f"no {RUN_FILE}, so this is not a digitlab run (found: {found})")
        try:
            data = json.loads(run_file.read_text())
        except ValueError as err:  # bad JSON or UTF-8, or an integer of over 4,300 digits (int_max_str_digits)
            raise RunError(f"{RUN_FILE} is not valid JSON ({err})") from None
        try:
            check_record(data)
            config = TrainConfig.from_dict(data["config"])
            if data["status"] != "diverged" and (path / WEIGHTS_FILE).is_file():  # weights a page would load
                check_weights(path / WEIGHTS_FILE, config)
        except SchemaError as err:
            raise RunError(str(err)) from None
        record = RunRecord(path.name, path, data, config)
        if record.status == "running" and not _is_alive(path, data):
            data.update(status="interrupted", message="The process training it ended before the run finished; "
                        "the epochs finished before that are kept.", updated_at=_now())
            write_json(run_file, data)
        if record.status in ("completed", "stopped") and not record.has_weights:
            raise RunError(f"{WEIGHTS_FILE} is missing, so the {record.status} run cannot be used")
        return record

    def list(self) -> Listing:
        """Every run, newest first, and every folder that could not be read with the reason."""
        runs, unreadable = [], []
        if self.root.is_dir():
            for path in sorted(self.root.iterdir()):
                if not path.is_dir() or path.name.startswith("."):
                    continue
                try:
                    runs.append(self._read(path))
                except (RunError, OSError) as err:
                    unreadable.append((path, str(err)))
        shipped = [r for r in runs if r.shipped]
        trained = sorted((r for r in runs if not r.shipped), key=lambda r: r.data.get("created_at", ""), reverse=True)
        return Listing(trained + shipped, unreadable)

    def load(self, run_id_or_path: str | os.PathLike) -> LoadedRun:
        path = Path(run_id_or_path)
        record = self._read(path) if path.is_dir() and (path / RUN_FILE).exists() else self.read(str(run_id_or_path))
        return LoadedRun(record, load_model(record))

    def delete(self, run_id: str) -> None:
        record = self.read(run_id)
        if record.shipped:
            raise ProtectedRunError(f"{record.name} is a shipped checkpoint and cannot be deleted")
        if record.status == "running":
            raise ProtectedRunError(f"{record.name} is still training; stop it before deleting it")
        # Rename first: a crash mid-delete leaves a hidden folder that listing skips, never half a run.
        trash = record.path.with_name(f".deleted-{record.id}-{secrets.token_hex(2)}")
        os.replace(record.path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def rename(self, run_id: str, name: str) -> None:
        record = self.read(run_id)
        if record.shipped:
            raise ProtectedRunError(f"{record.name} is a shipped checkpoint and cannot be renamed")
        name = name.strip()
        if not name or len(name) > 80:
            raise RunError("a run name needs 1 to 80 characters")
        write_json(record.path / RUN_FILE, {**record.data, "name": name, "updated_at": _now()})


def load_model(record: RunRecord) -> nn.Module:
    if not record.has_weights:
        raise RunError(f"{record.name} has no weights ({record.status} before its first epoch ended)")
    try:
        model = create_model(record.config.model, **record.config.model_options)
    except (UnknownModelError, TypeError, ValueError) as err:
        raise RunError(f"its model cannot be built: {err}") from None
    try:
        state = load_file(str(record.weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{WEIGHTS_FILE} cannot be read ({err}); it may be damaged or not a safetensors file") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise RunError(f"{WEIGHTS_FILE} does not fit a {record.config.model} with this config: {first_line}") from None
    return model.eval()


def load_run(run_id_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> LoadedRun:
    """A run by id (in ``root`` or the default store) or by folder path, with its model ready to predict."""
    return RunStore(root).load(run_id_or_path)


def list_runs(root: str | os.PathLike | None = None) -> Listing:
    return RunStore(root).list()


def _is_alive(path: Path, data: dict[str, Any]) -> bool:
    """Is the process that wrote this "running" run still training it?"""
    if fcntl is not None:
        # The trainer holds an exclusive lock on .lock; the kernel drops it when that process dies.
        try:
            with open(path / LOCK_FILE, "a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(f, fcntl.LOCK_UN)
                return False
        except OSError:
            return False
    pid = data.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def ship_run(store: RunStore, run_id: str) -> RunRecord:
    """Make a completed run the shipped checkpoint of its architecture: folder shipped-<model>, protected."""
    record = store.read(run_id)
    if record.status != "completed":
        raise RunError(f"only completed runs can be shipped; {record.name} is {record.status}")
    target = store.path_for(SHIPPED_PREFIX + record.config.model)
    if target.exists():
        raise RunError(f"{target.name} already exists; move it away first")
    name = record.config.name or f"{record.config.model} (shipped)"
    write_json(record.path / RUN_FILE, {**record.data, "shipped": True, "name": name})
    (record.path / LOCK_FILE).unlink(missing_ok=True)
    os.replace(record.path, target)
    return store.read(target.name)
