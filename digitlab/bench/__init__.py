"""`python -m digitlab bench`: the speed figures the project promises, measured and printed in one run.

1. seconds per epoch of the seed-cnn preset, the median of EPOCH_REPEATS epochs each (one epoch moves by 20-30%
   on a shared machine): digitlab's engine in fp32 and in the fastest precision this device has (bf16 where the
   CPU or card runs it natively), each against the same plain torchvision DataLoader loop (ToTensor + Normalize,
   seed 000's own network, Adadelta, batch 512, fp32), run in a fresh process so that none of digitlab's CPU
   settings (flush-denormal, threads) leak into it;
2. seconds the fast preset needs to reach 99.0% test accuracy, on each of FAST_SEEDS, and their median (train_s:
   the training with its per-epoch evaluation);
3. milliseconds from a 280x280 canvas (as the PNG the component sends) to the predictions of every shipped
   model (p50, p95).
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from digitlab.config import preset
from digitlab.data import MNIST_MEAN, MNIST_STD, data_root, load_mnist
from digitlab.device import auto_precision, pick_device
from digitlab.engine import BatchEnd, EpochEnd, RunEnd, train
from digitlab.bench.held_out_cost import run_held_out_cost
from digitlab.bench.strokes import render_digit
from digitlab.store import RunStore, load_model

FAST_TARGET = 0.99
FAST_SEEDS = (0, 1, 2)
CANVAS_REPEATS = 200
EPOCH_REPEATS = 3


def engine_epoch_seconds(root, precision: str) -> list[float]:
    """Seconds of EPOCH_REPEATS one-epoch runs of seed-cnn, in this process: from the start to its last batch."""
    config = preset("seed-cnn").replace(epochs=1, precision=precision)
    data = load_mnist(root)
    seconds = []
    for _ in range(EPOCH_REPEATS):
        last_batch = None
        for event in train(config, data):
            if isinstance(event, BatchEnd):
                last_batch = event
        seconds.append(last_batch.elapsed_s)
    return seconds


class SeedNet(torch.nn.Module):
    """Seed 000's CNN exactly as its write-up wrote it (Appendix A): what a plain training loop trains."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, 1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = torch.nn.Dropout(0.25)
        self.dropout2 = torch.nn.Dropout(0.5)
        self.fc1 = torch.nn.Linear(2304, 64)
        self.fc2 = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = self.dropout1(F.max_pool2d(x, 2)).flatten(1)
        return self.fc2(self.dropout2(F.relu(self.fc1(x))))


def dataloader_epoch_seconds(root: str) -> list[float]:
    """Seconds of each of EPOCH_REPEATS training epochs the way pytorch/examples and seed 000 write them: PIL
    images through ToTensor + Normalize in a DataLoader, the write-up's own model, Adadelta, batch 512, default
    precision and layout."""
    from torchvision import datasets, transforms

    config = preset("seed-cnn")
    torch.manual_seed(config.seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    dataset = datasets.MNIST(root, train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True)
    model = SeedNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=config.lr)
    model.train()
    seconds = []
    for _ in range(EPOCH_REPEATS):
        start = time.perf_counter()
        for images, labels in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def dataloader_epoch_in_fresh_process(root: str) -> list[float]:
    """dataloader_epoch_seconds in a new interpreter, so that none of this process's torch settings apply."""
    code = ("import json, sys; from digitlab.bench import dataloader_epoch_seconds; "
            "print(json.dumps({'seconds': dataloader_epoch_seconds(sys.argv[1])}))")
    out = subprocess.run([sys.executable, "-c", code, root], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def fast_seconds_to_target(root, seed: int = 0) -> tuple[float | None, float, float]:
    """(seconds at the first epoch end at or above 99%, evaluation included, or None; the final test accuracy; the
    run's train_s) of the fast preset with ``seed``."""
    reached, acc, train_s = None, 0.0, 0.0
    for event in train(preset("fast").replace(seed=seed), load_mnist(root)):
        if isinstance(event, EpochEnd):
            acc = event.test_acc
            if reached is None and acc >= FAST_TARGET:
                reached = event.elapsed_s
        elif isinstance(event, RunEnd):
            train_s = event.train_s
    return reached, acc, train_s


def spread(seconds: list[float]) -> str:
    return f"{len(seconds)} epochs, {min(seconds):.2f}-{max(seconds):.2f} s"


def canvas_png(rgba) -> bytes:
    """What the canvas component sends the server on each stroke: the drawing as a PNG."""
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return buffer.getvalue()


def percentiles(timings: list[float]) -> tuple[float, float]:
    timings = sorted(timings)
    return statistics.median(timings), timings[int(0.95 * len(timings)) - 1]


def canvas_latency_ms(store: RunStore) -> tuple[list[str], tuple[float, float], tuple[float, float]]:
    """Milliseconds (p50, p95) to every shipped model's probabilities, from a 280x280 RGBA canvas and from the PNG
    the canvas component sends on each stroke (decoding included): the Draw page's server work per stroke."""
    from digitlab.dashboard.consensus import guess_drawing

    records = [r for r in store.list().runs if r.shipped]
    models = {r.id: load_model(r) for r in records}
    canvases = [render_digit(d) for d in range(10)]
    drawings = [canvas_png(rgba) for rgba in canvases]
    from_rgba, from_png = [], []
    for i in range(CANVAS_REPEATS + 10):
        _, _, ms = guess_drawing(models, canvases[i % len(canvases)])
        start = time.perf_counter()
        guess_drawing(models, np.asarray(Image.open(io.BytesIO(drawings[i % len(drawings)]))))
        if i >= 10:  # the first calls warm up oneDNN's kernels
            from_rgba.append(ms)
            from_png.append((time.perf_counter() - start) * 1000)
    return list(models), percentiles(from_rgba), percentiles(from_png)


def run_bench(root, store: RunStore, dataloader_epoch: bool = True) -> None:
    root = str(data_root(root))
    load_mnist(root)  # reading the files once is not part of any figure
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    device = pick_device("auto")
    fastest = auto_precision(device)
    engine_s = {precision: engine_epoch_seconds(root, precision) for precision in dict.fromkeys(("fp32", fastest))}
    for precision, seconds in engine_s.items():
        print(f"seed-cnn epoch, engine, {precision}:     {statistics.median(seconds):6.2f} s (median; "
              f"{spread(seconds)})", flush=True)
    if dataloader_epoch:
        loader_s = dataloader_epoch_in_fresh_process(root)
        print(f"seed-cnn epoch, DataLoader loop:   {statistics.median(loader_s):6.2f} s (median; {spread(loader_s)}; "
              "fp32)", flush=True)
        for precision, seconds in engine_s.items():
            print(f"seed-cnn epoch speed-up, {precision}:    "
                  f"{statistics.median(loader_s) / statistics.median(seconds):6.1f}x (of the medians)", flush=True)

    train_seconds, reached_by = [], 0
    for seed in FAST_SEEDS:
        reached, acc, train_s = fast_seconds_to_target(root, seed)
        train_seconds.append(train_s)
        reached_by += reached is not None
        if reached is None:
            print(f"fast preset, seed {seed}: did not reach {FAST_TARGET:.1%} (test accuracy {acc:.2%}, train_s "
                  f"{train_s:.2f} s)", flush=True)
        else:
            print(f"fast preset to {FAST_TARGET:.1%}, seed {seed}:    {reached:6.2f} s (test accuracy {acc:.2%}, "
                  f"train_s {train_s:.2f} s)", flush=True)
    print(f"fast preset to {FAST_TARGET:.1%}, median:    {statistics.median(train_seconds):6.2f} s (median train_s; "
          f"{reached_by} of {len(FAST_SEEDS)} seeds reached it)", flush=True)

    run_held_out_cost(root)

    ids, from_rgba, from_png = canvas_latency_ms(store)
    if ids:
        print(f"canvas RGBA -> {len(ids)} shipped models:  p50 {from_rgba[0]:.2f} ms, p95 {from_rgba[1]:.2f} ms "
              f"({', '.join(ids)})")
        print(f"canvas PNG  -> {len(ids)} shipped models:  p50 {from_png[0]:.2f} ms, p95 {from_png[1]:.2f} ms "
              "(what the Draw page does per stroke)")
    else:
        print(f"canvas -> shipped models: none found in {store.root}")
