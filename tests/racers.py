"""Processes for the run store's race tests, started with pause points switched on (tests/pausing.py).

python -m tests.racers train STORE DATA       train the tiny config into STORE, print the run id
python -m tests.racers read STORE RUN_ID      read one run, as a page does
python -m tests.racers write-json PATH        write {"written": true} to PATH atomically
python -m tests.racers save-drawing ROOT DIGIT  save a synthetic drawing of DIGIT in ROOT, print its id
python -m tests.racers relabel-drawing ROOT ID LABEL  relabel drawing ID in ROOT
"""

from __future__ import annotations

import sys
from pathlib import Path

from digitlab.config import TrainConfig

TINY = TrainConfig(model="mlp", model_options={"hidden": [32]}, lr=0.01, batch_size=64, epochs=2, name="tiny")


def main(command: str, *args: str) -> None:
    if command == "train":
        from digitlab.data import load_mnist
        from digitlab.engine import RunStart, train
        from digitlab.recorder import record_training
        from digitlab.store import RunStore

        def announce(recorder, event) -> None:
            if isinstance(event, RunStart):
                print(recorder.run_id, flush=True)

        store_root, data_root = args
        record = record_training(RunStore(store_root), TINY, train(TINY, load_mnist(data_root, download=False)),
                                 announce)
        print(record.status, flush=True)
    elif command == "read":
        from digitlab.store import RunStore

        print(RunStore(args[0]).read(args[1]).status, flush=True)
    elif command == "write-json":
        from digitlab.store import write_json

        write_json(Path(args[0]), {"written": True})
    elif command == "save-drawing":
        from digitlab.bench.strokes import render_digit
        from digitlab.drawings import DrawingStore

        print(DrawingStore(args[0]).save(render_digit(int(args[1])), int(args[1]), 18), flush=True)
    elif command == "relabel-drawing":
        from digitlab.drawings import DrawingStore

        DrawingStore(args[0]).relabel(args[1], args[2])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
