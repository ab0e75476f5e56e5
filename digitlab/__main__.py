"""python -m digitlab train | eval | list | presets | bench | ship — the same engine and run store as the dashboard."""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from digitlab import study
from digitlab.config import PRESETS, ConfigError, TrainConfig, UnknownPresetError, parse_value, preset
from digitlab.data import DataNotFoundError, load_mnist
from digitlab.device import DeviceUnavailableError
from digitlab.drawings import DrawingsError
from digitlab.engine import BatchEnd, EpochEnd, RunEnd, RunStart, train
from digitlab.recorder import record_training
from digitlab.store import RunError, RunStore

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class CliError(Exception):
    """Bad input: printed as one line, exit code 2."""


def build_config(args: argparse.Namespace) -> TrainConfig:
    if args.config:
        try:
            config = TrainConfig.from_json(Path(args.config).read_text())
        except OSError as err:
            raise CliError(f"cannot read config file {args.config}: {err.strerror}") from None
    else:
        config = preset(args.preset)
    overrides = {key: getattr(args, key) for key in ("epochs", "batch_size", "lr", "seed", "device", "name")
                 if getattr(args, key) is not None}
    config = config.replace(**overrides)
    for assignment in args.set or []:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise CliError(f"--set expects key=value, got {assignment!r}")
        try:
            config = config.with_field(key, parse_value(value))
        except ConfigError as err:
            raise CliError(f"--set: {err}") from None
    errors = config.validate()
    if errors:
        raise CliError("invalid config:\n" + "\n".join(f"  {field}: {message}" for field, message in errors.items()))
    return config


def cmd_train(args: argparse.Namespace) -> int:
    config = build_config(args)
    data = load_mnist(args.data, download=not args.no_download)
    store = RunStore(args.out)
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        tqdm.write("Stopping after this batch (Ctrl-C again to abort)...")

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar: tqdm | None = None

    def show(recorder, event) -> None:
        nonlocal bar
        if isinstance(event, RunStart):
            tqdm.write(f"run {recorder.run_id}: {config.model}, {event.param_count:,} parameters, {event.device_name}")
            bar = tqdm(total=config.epochs * event.batches_per_epoch, unit="batch", dynamic_ncols=True,
                       disable=args.quiet)
        elif isinstance(event, BatchEnd):
            bar.update(1)
            if event.batch % 20 == 0 or event.batch == event.batches_per_epoch:
                bar.set_description(f"epoch {event.epoch}/{config.epochs}")
                bar.set_postfix(loss=f"{event.loss:.4f}", acc=f"{event.accuracy:.3f}", lr=f"{event.lr:.2g}")
        elif isinstance(event, EpochEnd):
            validation = (f"val_loss={event.val_loss:.4f} val_acc={event.val_acc:.4f} "
                          if event.val_loss is not None else "")
            tqdm.write(f"epoch {event.epoch}: train_loss={event.train_loss:.4f} train_acc={event.train_acc:.4f} "
                       f"{validation}test_loss={event.test_loss:.4f} test_acc={event.test_acc:.4f} "
                       f"({event.elapsed_s:.1f} s)")
        elif isinstance(event, RunEnd):
            bar.close()
            if event.status != "completed":
                tqdm.write(event.message)

    try:
        record = record_training(store, config, train(config, data, stop), show)
    finally:
        signal.signal(signal.SIGINT, previous)
    final = record.final
    test_acc = f"{final['test_acc']:.4f}" if "test_acc" in final else "-"
    print(f"run={record.id} status={record.status} test_acc={test_acc} train_s={final['train_s']:.1f}")
    return EXIT_DIVERGED if record.status == "diverged" else 0


def eval_drawings(loaded, folder: str | None) -> int:
    """eval --drawings: the run's accuracy on the drawings saved on Draw (digitlab.drawings), per digit too."""
    from digitlab.drawings import DrawingStore, score

    drawings = DrawingStore(folder)
    if not drawings.root.is_dir():
        raise CliError(f"the drawings folder {drawings.root} does not exist: save drawings on the Draw page, or "
                       f"point --drawings (or $DIGITLAB_DRAWINGS) at a folder of them")
    listing = drawings.list()
    for path, reason in listing.unreadable:
        print(f"skipped {path.name}: {reason}", file=sys.stderr)
    if not listing.drawings:
        raise CliError(f"no readable drawings in {drawings.root}: save some on the Draw page first")
    result = score(loaded, listing.drawings)
    print(f"run={loaded.id} drawings={result.count} drawings_acc={result.accuracy:.4f} correct={result.correct} "
          f"unreadable={len(listing.unreadable)} folder={drawings.root}")
    for digit, (correct, count) in result.per_digit.items():
        print(f"  {digit}: {correct}/{count}" + (f" = {correct / count:.2%}" if count else ""))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import time

    import torch

    from digitlab.predict import run_predictions

    store = RunStore(args.out)
    loaded = store.load(args.run)
    if args.drawings is not None:
        return eval_drawings(loaded, args.drawings or None)
    data = load_mnist(args.data, download=not args.no_download)
    start = time.perf_counter()
    preds = run_predictions(loaded, data)
    seconds = time.perf_counter() - start
    picked = preds.probs.gather(1, preds.labels[:, None]).clamp(min=1e-12)
    test_loss = -torch.log(picked).mean().item()
    print(f"run={loaded.id} test_acc={preds.accuracy:.4f} test_loss={test_loss:.4f} "
          f"errors={len(preds.misclassified)} seconds={seconds:.2f}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    listing = RunStore(args.out).list()
    print(f"{'run':36} {'model':7} {'status':11} {'test_acc':>8} {'train_s':>8}  name")
    for run in listing.runs:
        acc = f"{run.test_acc:.4f}" if run.test_acc is not None else "-"
        train_s = f"{run.final['train_s']:.1f}" if "train_s" in run.final else "-"
        name = run.name if run.name != run.id else ""
        print(f"{run.id:36} {run.config.model:7} {run.status:11} {acc:>8} {train_s:>8}  {name}")
    for path, reason in listing.unreadable:
        print(f"unreadable: {path}: {reason}", file=sys.stderr)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    for name, found in PRESETS.items():
        print(f"{name:16} {found.description}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.study_workers:
        from digitlab.bench.study_layout import run_study_layout_bench

        run_study_layout_bench(args.data)
        return 0
    if args.held_out:
        from digitlab.bench.held_out_cost import run_held_out_cost

        run_held_out_cost(args.data)
        return 0
    if args.inside:
        from digitlab.bench.inside_timings import run_inside_bench

        run_inside_bench(args.data, RunStore(args.out))
        return 0
    from digitlab.bench import run_bench

    run_bench(args.data, RunStore(args.out), dataloader_epoch=not args.skip_dataloader)
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    """Ship the run if it beats the checkpoint it would replace (digitlab.shipping); a refusal is bad input."""
    from digitlab.shipping import ship

    data = load_mnist(args.data, download=not args.no_download)
    bar, progress = _progress_bar(args.quiet, desc="scoring", unit="set")
    with bar:
        report = ship(RunStore(args.out), args.run, data, progress)
    print(f"shipped {report.record.id}: {report.scores.line()}")
    if report.replaced is not None:
        print(f"it replaced a checkpoint with {report.replaced.line()}")
    return 0


MAX_WORKERS = 64


def _check_workers(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise CliError(f"--workers must be from 1 to {MAX_WORKERS}, got {workers}")


def _progress_bar(quiet: bool, **options: Any) -> tuple[tqdm, Callable[[int, int], None]]:
    """A tqdm bar and the (done, total) callback the library's long tasks report to."""
    bar = tqdm(dynamic_ncols=True, disable=quiet, **options)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


def _stop_on_sigint() -> tuple[Any, Any]:
    """A stop event (shared with spawned workers) that Ctrl-C sets: every worker ends after its current batch."""
    stop = multiprocessing.get_context("spawn").Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        tqdm.write("Stopping every worker after its current batch (Ctrl-C again to abort)...")

    return stop, signal.signal(signal.SIGINT, on_sigint)


def cmd_study_run(args: argparse.Namespace) -> int:
    _check_workers(args.workers)
    spec = study.define_study(
        args.name, args.base or "fast", seed_study=args.preset, repeat=args.repeat,
        grid=study.parse_grid(args.grid, "--grid"), search=study.parse_search(args.search, "--search"),
        trials=args.trials, prune=args.prune, epochs=args.epochs, validation_size=args.validation)
    data = load_mnist(args.data, download=not args.no_download)
    bar, progress = _progress_bar(args.quiet, total=spec.total, unit="trial")
    stop, previous = _stop_on_sigint()
    try:
        summary = study.run_study(spec, data, args.out, args.storage, workers=min(args.workers, spec.total),
                                  stop=stop, on_progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    print(study.format_table(summary))
    print(summary.line())
    return 0


def cmd_study_work(args: argparse.Namespace) -> int:
    _check_workers(args.workers)
    storage = study.open_storage(args.storage, args.out)
    found, spec = study.load_study(args.name, storage)
    data = load_mnist(args.data, download=not args.no_download)
    bar, progress = _progress_bar(args.quiet, total=spec.total, unit="trial")
    stop, previous = _stop_on_sigint()
    tick = lambda: progress(study.summarize(found, spec).ended, spec.total)  # noqa: E731
    try:
        if args.workers > 1:
            url = study.storage_url(args.storage, args.out)
            study.wait_for_workers(study.spawn_workers(args.name, url, data, args.out or "", args.workers, stop), tick)
        else:
            study.work(args.name, storage, data, RunStore(args.out), stop, tick)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    print(study.summarize(found, spec).line())
    return 0


def cmd_study_list(args: argparse.Namespace) -> int:
    print(f"{'study':30} {'kind':7} {'configs':>7} {'trials':>6}")
    for found in study.list_studies(study.open_storage(args.storage, args.out)):
        print(f"{found['name']:30} {found['kind']:7} {found['total']:>7} {found['trials']:>6}")
    return 0


def cmd_study_show(args: argparse.Namespace) -> int:
    summary = study.show(args.name, study.open_storage(args.storage, args.out))
    print(study.format_table(summary))
    print(summary.line())
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    """The corruption benchmark of each run, as one table; a run that cannot be read is reported, the others go on.
    With --bench: the robustness lab's speed figures on the shipped checkpoints instead."""
    from digitlab import robustness

    store = RunStore(args.out)
    if args.bench:
        from digitlab.bench.robustness_timings import run_robustness_bench

        run_robustness_bench(args.data, store)
        return 0
    if not args.runs:
        raise CliError("name at least one run (python -m digitlab list shows them), or pass --bench")
    data = load_mnist(args.data, download=not args.no_download)
    results, failed = {}, False
    for run_id in args.runs:
        try:
            run = store.load(run_id)
        except RunError as err:
            print(f"error: {run_id}: {err}", file=sys.stderr)
            failed = True
            continue
        bar, progress = _progress_bar(args.quiet, total=len(robustness.CORRUPTIONS), desc=run.id, unit="set")
        with bar:
            results[run.id] = robustness.corruption_benchmark(run, data, progress)
    if results:
        print(robustness.format_table(results))
    return EXIT_BAD_INPUT if failed else 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m digitlab", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", help="folder holding MNIST/raw/ (default: $DIGITLAB_DATA or ./data)")
        p.add_argument("--out", help="run store folder (default: $DIGITLAB_CHECKPOINTS or checkpoints/)")
        p.add_argument("--no-download", action="store_true", help="never try to download MNIST")

    p = sub.add_parser("train", help="train a preset or a config file")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", default="fast", help=f"one of: {', '.join(PRESETS)} (default: fast)")
    source.add_argument("--config", help="a TrainConfig JSON file")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda or mps")
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config field, e.g. --set augment=shift --set model_options.hidden=[256]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="test accuracy of a stored run")
    p.add_argument("run", help="run id or folder")
    p.add_argument("--drawings", nargs="?", const="", metavar="DIR",
                   help="score the run on the drawings saved on Draw instead (default DIR: $DIGITLAB_DRAWINGS or "
                        "./drawings)")
    common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("list", help="stored runs")
    common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("presets", help="the named presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("bench", help="speed figures: engine vs DataLoader, fast preset, canvas to predictions")
    p.add_argument("--skip-dataloader", action="store_true", help="skip the slow DataLoader baseline epoch")
    p.add_argument("--inside", action="store_true",
                   help="only the Inside page's figures: feature maps, attributions, nearest training images")
    p.add_argument("--held-out", action="store_true",
                   help="only this: what the held-out checks inside each epoch cost, fast and seed-cnn")
    p.add_argument("--study-workers", action="store_true",
                   help="only this: one study worker on every core against one worker per core, images/s")
    common(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("ship", help="make a run the shipped checkpoint of its architecture (shipped-<model>), "
                                    "replacing the current one only if it beats it on test accuracy and MNIST-C mean")
    p.add_argument("run", help="run id")
    common(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ship)

    p = sub.add_parser("study", help="repeats, grids and searches of many runs, on Optuna (digitlab.study)")
    study_sub = p.add_subparsers(dest="study_command", required=True)

    def storage(q: argparse.ArgumentParser) -> None:
        q.add_argument("--storage", help="SQLAlchemy URL, e.g. postgresql://USER@HOST:5432/DB (default: "
                                         "$DIGITLAB_STUDY_STORAGE or an SQLite file in the run store)")

    def workers(q: argparse.ArgumentParser) -> None:
        q.add_argument("--workers", type=int, default=study.DEFAULT_WORKERS, metavar="K",
                       help="worker processes on this machine, the cores shared out between them (default: "
                            f"{study.DEFAULT_WORKERS})")
        q.add_argument("--quiet", action="store_true", help="no progress bar")

    q = study_sub.add_parser("run", help="create (or resume) a study and wait until every trial has ended")
    q.add_argument("name")
    base = q.add_mutually_exclusive_group(required=True)
    base.add_argument("--base", metavar="PRESET", help=f"the preset every trial starts from: {', '.join(PRESETS)}")
    base.add_argument("--preset", metavar="SEED_STUDY", help="a seed study: seed-000-batch, seed-001-bn, seed-002, "
                                                             "seed-003")
    q.add_argument("--repeat", type=int, metavar="N", help="seeds per configuration (default 1; 3 for a seed study)")
    q.add_argument("--grid", nargs="+", action="extend", default=[], metavar="FIELD=VALUES",
                   help="values to cross: lr=0.01,0.1 or 'model_options.channels=[16,32];[32,64]'")
    q.add_argument("--search", nargs="+", action="extend", default=[], metavar="FIELD=SPEC",
                   help="LOW:HIGH, LOW:HIGH:log, LOW:HIGH:int or choices a,b,c (TPE)")
    q.add_argument("--trials", type=int, metavar="N", help="a search's trials (default 20)")
    q.add_argument("--prune", action="store_true", help="end a search's weak trials early on validation accuracy")
    q.add_argument("--epochs", type=int, metavar="E")
    q.add_argument("--validation", type=int, metavar="N", help="validation images held out (default 5000)")
    workers(q)
    storage(q)
    common(q)
    q.set_defaults(func=cmd_study_run)

    q = study_sub.add_parser("work", help="take trials of an existing study (on this or another machine)")
    q.add_argument("name")
    workers(q)
    storage(q)
    common(q)
    q.set_defaults(func=cmd_study_work)

    q = study_sub.add_parser("list", help="the studies in the storage")
    storage(q)
    q.add_argument("--out", help=argparse.SUPPRESS)
    q.set_defaults(func=cmd_study_list)

    q = study_sub.add_parser("show", help="a study's table and summary line")
    q.add_argument("name")
    storage(q)
    q.add_argument("--out", help=argparse.SUPPRESS)
    q.set_defaults(func=cmd_study_show)

    p = sub.add_parser("robustness", help="accuracy on 15 MNIST-C corruptions of the test set, per run (cached)")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids or folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--bench", action="store_true",
                   help="instead: the speed figures of the sweeps and the benchmark, on the shipped checkpoints")
    common(p)
    p.set_defaults(func=cmd_robustness)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, ConfigError, UnknownPresetError, DataNotFoundError, DeviceUnavailableError, RunError,
            study.StudyError, DrawingsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
