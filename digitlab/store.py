"""The run store: one folder per run under checkpoints/, holding weights.safetensors and run.json.

Every write is atomic (a temporary file, then a rename), a run being trained is written at each epoch end, and a
run left "running" by a dead process is marked "interrupted" the next time anyone looks. Nothing is unpickled. In
read-only mode (read_only) looking changes nothing: such a run is shown as interrupted and its record left as it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_from_bytes
from safetensors.torch import save_file
from torch import nn

from digitlab.config import TrainConfig
from digitlab.files import atomic_write, remove_leftovers, write_json
from digitlab.models import UnknownModelError, create_model
from digitlab.pause import pause_point
from digitlab.schema import FORMAT, SchemaError, check_record, check_weights

try:
    import fcntl
except ImportError:  # Windows: liveness falls back to the process id
    fcntl = None

RUN_FILE = "run.json"
WEIGHTS_FILE = "weights.safetensors"
LOCK_FILE = ".lock"
SHIPPED_PREFIX = "shipped-"
TRASH_PREFIX = ".deleted-"
READ_ONLY_ENV = "DIGITLAB_READ_ONLY"
INTERRUPTED_MESSAGE = ("The process training it ended before the run finished; the epochs finished before that "
                       "are kept.")
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class RunError(Exception):
    """A run that cannot be read or used; the message says why and what to do."""


class InvalidRunIdError(RunError, ValueError):
    pass


class ProtectedRunError(RunError, PermissionError):
    pass


class RunBusyError(ProtectedRunError):
    """A live process (the run's trainer) holds the run: it cannot be changed until that process ends."""


def read_only() -> bool:
    """Is read-only (classroom) mode on? DIGITLAB_READ_ONLY set to 1, true, yes or on. Then nothing under the run
    store is written, removed or renamed by looking at it: runs, trash and leftovers stay as they are, and caches
    of runs' results go to the cache folder (digitlab.cache)."""
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def checkpoints_root(path: str | os.PathLike | None = None) -> Path:
    """An explicit folder, else DIGITLAB_CHECKPOINTS, else checkpoints/ beside the digitlab package."""
    return Path(path or os.environ.get("DIGITLAB_CHECKPOINTS") or Path(__file__).resolve().parent.parent / "checkpoints")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def run_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold a run folder's lock for a read-modify-write of its files. Its trainer holds the same lock from start to
    end, so a live trainer makes this raise RunBusyError("<run> is still training; <busy>")."""
    if fcntl is None:
        if _trainer_alive(path):
            raise RunBusyError(f"{path.name} is still training; {busy}")
        yield
        return
    with open(path / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(f"{path.name} is still training; {busy}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
    def study(self) -> dict[str, Any] | None:
        """{"name", "trial"} of the study that trained this run, else None."""
        return self.data.get("study")

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
    weights_sha256: str  # of the bytes the model was loaded from: what caches of its outputs are keyed by

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def config(self) -> TrainConfig:
        return self.record.config

    @property
    def metrics(self) -> dict[str, Any]:
        return {"epochs": self.record.epochs, "final": self.record.final, "batches": self.record.batches}

    def input_from_canvas(self, rgba) -> torch.Tensor | None:
        """A canvas's (H, W, 4) uint8 RGBA -> this run's model input (1, 1, 28, 28), scaled the way it was trained;
        None for an empty canvas."""
        from digitlab.preprocess import canvas_input  # deferred: the store itself needs no image code

        return canvas_input(rgba, self.config.input_scaling)

    def input_from_image(self, images) -> torch.Tensor:
        """uint8 (28, 28) or (N, 28, 28) MNIST-style images -> this run's model input (N, 1, 28, 28)."""
        from digitlab.preprocess import image_input

        return image_input(images, self.config.input_scaling)


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

    def _read(self, path: Path, settle: bool = True) -> RunRecord:
        """The run in ``path``; with ``settle``, a "running" run whose trainer is gone is marked interrupted."""
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
        pause_point("store.read.after_json")
        try:
            check_record(data)
            config = TrainConfig.from_dict(data["config"])
            if data["status"] != "diverged" and (path / WEIGHTS_FILE).is_file():  # weights a page would load
                check_weights(path / WEIGHTS_FILE, config)
        except SchemaError as err:
            raise RunError(str(err)) from None
        record = RunRecord(path.name, path, data, config)
        if settle and record.status == "running":
            record = self._settle(record)
        # A run stopped before its first epoch ended has no weights, rightly; any other finished run needs them.
        if not record.has_weights and (record.status in ("completed", "pruned")
                                       or (record.status == "stopped" and record.epochs)):
            raise RunError(f"{WEIGHTS_FILE} is missing, so the {record.status} run cannot be used")
        return record

    def _settle(self, record: RunRecord) -> RunRecord:
        """A "running" run whose trainer has died becomes interrupted. Decided under the run's lock on a fresh read:
        the trainer may have written its end between the caller's read and now. In read-only mode it is only shown
        as interrupted: taking the lock would create its file."""
        if read_only():
            return record if _trainer_alive(record.path) else _shown_interrupted(record)
        try:
            with run_lock(record.path, "leave it be"):
                fresh = self._read(record.path, settle=False)
                if fresh.status != "running":
                    return fresh
                data = {**fresh.data, "status": "interrupted", "message": INTERRUPTED_MESSAGE, "updated_at": _now()}
                write_json(record.path / RUN_FILE, data)
                return replace(fresh, data=data)
        except RunBusyError:
            return record  # its trainer is alive
        except OSError:  # a store that cannot be written: show what it is, write nothing
            return _shown_interrupted(record)

    def fingerprint(self) -> tuple:
        """(name, run.json's stamp, the weights' stamp) per entry of the store, a stamp being (mtime_ns, size, inode)
        or None: changes whenever a run is added, written, renamed or removed, so that a listing can be kept by it.
        A run whose trainer dies changes nothing here."""
        if not self.root.is_dir():
            return ()
        return tuple((entry.name, _stamp(entry / RUN_FILE), _stamp(entry / WEIGHTS_FILE))
                     for entry in sorted(self.root.iterdir()))

    def list(self) -> Listing:
        """Every run, newest first, and every folder that could not be read with the reason."""
        runs, unreadable = [], []
        sweep = not read_only()
        if self.root.is_dir():
            for path in sorted(self.root.iterdir()):
                if sweep and path.name.startswith(TRASH_PREFIX) and path.is_dir():  # a delete that crashed half-way
                    shutil.rmtree(path, ignore_errors=True)
                if not path.is_dir() or path.name.startswith("."):
                    continue
                if sweep:
                    remove_leftovers(path)
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
        return LoadedRun(record, *_load_model(record))

    def delete(self, run_id: str) -> None:
        """Delete a run, or a folder of the store that cannot be read as one; never a shipped checkpoint, nor a run
        whose trainer is alive."""
        path = self.path_for(run_id)
        if not path.is_dir():
            raise RunError(f"no run {run_id!r} in {self.root}")
        if path.name.startswith(SHIPPED_PREFIX):
            raise ProtectedRunError(f"{run_id} is a shipped checkpoint and cannot be deleted")
        with run_lock(path, "stop it before deleting it"):
            with contextlib.suppress(RunError):
                if self._read(path, settle=False).shipped:
                    raise ProtectedRunError(f"{run_id} is a shipped checkpoint and cannot be deleted")
            # Rename first: a crash mid-delete leaves a hidden folder that listing skips (and sweeps), never half a run.
            trash = path.with_name(f"{TRASH_PREFIX}{run_id}-{secrets.token_hex(2)}")
            os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def rename(self, run_id: str, name: str) -> None:
        name = name.strip()
        if not name or len(name) > 80:
            raise RunError("a run name needs 1 to 80 characters")
        path = self.path_for(run_id)
        # Under the lock, on a fresh read: the trainer rewrites run.json at every epoch and would undo the name.
        with run_lock(path, "rename it once it has finished"):
            record = self._read(path, settle=False)
            if record.shipped:
                raise ProtectedRunError(f"{record.name} is a shipped checkpoint and cannot be renamed")
            write_json(path / RUN_FILE, {**record.data, "name": name, "updated_at": _now()})

    def mark_stopped(self, run_id: str, message: str) -> RunRecord:
        """End a run whose trainer was killed from outside (a Stop past its grace period): status stopped, with the
        epochs it finished, whose weights are on disk already. A run that has ended by itself is left as it is."""
        path = self.path_for(run_id)
        with run_lock(path, "it has to end first"):
            record = self._read(path, settle=False)
            if record.status in ("running", "interrupted"):
                final: dict[str, float] = {"epochs_done": len(record.epochs),
                                           "train_s": record.epochs[-1]["elapsed_s"] if record.epochs else 0.0}
                if record.epochs:
                    final.update(test_acc=record.epochs[-1]["test_acc"], test_loss=record.epochs[-1]["test_loss"])
                now = _now()
                write_json(path / RUN_FILE, {**record.data, "status": "stopped", "message": message,
                                             "finished_at": now, "updated_at": now, "final": final})
        return self.read(run_id)


def load_model(record: RunRecord) -> nn.Module:
    """The run's model with its weights, in eval mode on the CPU."""
    return _load_model(record)[0]


def _load_model(record: RunRecord) -> tuple[nn.Module, str]:
    """(the model, the SHA-256 of the weights bytes it was loaded from). The file is read once: a trainer may
    replace it at any moment, and the hash must describe the weights in the model, not those on disk later."""
    if not record.has_weights:
        raise RunError(f"{record.name} has no weights ({record.status} before its first epoch ended)")
    try:
        model = create_model(record.config.model, **record.config.model_options)
    except (UnknownModelError, TypeError, ValueError) as err:
        raise RunError(f"its model cannot be built: {err}") from None
    try:
        raw = record.weights_path.read_bytes()
        state = safetensors_from_bytes(raw)
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{WEIGHTS_FILE} cannot be read ({err}); it may be damaged or not a safetensors file") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise RunError(f"{WEIGHTS_FILE} does not fit a {record.config.model} with this config: {first_line}") from None
    return model.eval(), hashlib.sha256(raw).hexdigest()


def load_run(run_id_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> LoadedRun:
    """A run by id (in ``root`` or the default store) or by folder path, with its model ready to predict."""
    return RunStore(root).load(run_id_or_path)


def list_runs(root: str | os.PathLike | None = None) -> Listing:
    return RunStore(root).list()


def _recorded_pid(path: Path) -> int | None:
    try:
        pid = json.loads((path / RUN_FILE).read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _trainer_alive(path: Path) -> bool:
    """Whether the run's trainer is alive: it holds the run's lock from start to end (its recorded process is
    running, where there are no file locks). Asked without creating the lock file."""
    if fcntl is None:
        pid = _recorded_pid(path)
        return pid is not None and _pid_alive(pid)
    try:
        with open(path / LOCK_FILE, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:  # BlockingIOError: the trainer holds it; any other: no lock file, no trainer held one
        return isinstance(err, BlockingIOError)
    return False


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _shown_interrupted(record: RunRecord) -> RunRecord:
    """A "running" record whose trainer is gone, as it is shown where it cannot be rewritten."""
    return replace(record, data={**record.data, "status": "interrupted", "message": INTERRUPTED_MESSAGE})
