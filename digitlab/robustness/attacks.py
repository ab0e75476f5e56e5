"""Adversarial examples: FGSM and PGD from Captum, in [0, 1] pixel space, through the run's input scaling, and
random ±ε sign noise as a baseline (attack). A run's accuracy against ε on a fixed 1,000-image test subset
(adversarial_curve) is computed once and cached beside the run, keyed by the weights' hash.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from digitlab.cache import CacheEntry, cached, run_entry
from digitlab.data import MNIST, load_mnist, split_fingerprint
from digitlab.device import configure_cpu
from digitlab.inside import Progress, model_input
from digitlab.robustness.sweeps import RobustnessError, probabilities
from digitlab.store import LoadedRun

CACHE_PREFIX = "robustness"  # beside a run: robustness-adversarial.safetensors

EPSILON_MAX = 0.3
ATTACKS = {"fgsm": "FGSM", "pgd": "PGD, 10 steps", "noise": "random ±ε noise"}
PGD_STEPS = 10
EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # the accuracy-against-ε curve
ATTACK_SUBSET = 1000  # test images the curve is measured on: the same ones for every run
SUBSET_SEED = 15
ATTACK_SEED = 0  # PGD's random start and the noise baseline


def epsilon_error(epsilon: float) -> str | None:
    """The ε field's message, or None when ε is allowed."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon):
        return f"ε must be a number from 0 to {EPSILON_MAX:g}, got {epsilon!r}."
    if not 0 <= epsilon <= EPSILON_MAX:
        return f"ε runs from 0 to {EPSILON_MAX:g} (a share of the pixel range 0..1); got {epsilon:g}."
    return None


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, reduction="none")


def attack(run: LoadedRun, images: torch.Tensor, labels: torch.Tensor, epsilon: float, method: str = "fgsm",
           seed: int = ATTACK_SEED) -> torch.Tensor:
    """Adversarial images (N, 28, 28) on 0..1, each within ε of its original (L∞), that push the run away from
    ``labels`` (N,). fgsm: one step of ε·sign(∇x loss). pgd: 10 steps of ε/4 from a random start in the ε-ball,
    projected back after each. noise: random ±ε per pixel, the baseline no gradient went into. The loss is the
    cross-entropy of the run's output, through its own input scaling."""
    from captum.robust import FGSM, PGD

    if (message := epsilon_error(epsilon)) is not None:
        raise RobustnessError(message)
    if method not in ATTACKS:
        raise RobustnessError(f"Unknown attack {method!r}; choose one of {', '.join(ATTACKS)}.")
    pixels = images.float().reshape(-1, 1, 28, 28)
    if epsilon == 0:
        return pixels.squeeze(1).clone()
    with torch.random.fork_rng(devices=[]):  # the random start and the noise: the same for the same call
        torch.manual_seed(seed)
        if method == "noise":
            signs = torch.randint(0, 2, pixels.shape, dtype=torch.float32) * 2 - 1
            return (pixels + epsilon * signs).clamp(0, 1).squeeze(1)

        def forward(x: torch.Tensor) -> torch.Tensor:
            return run.model(model_input(run, x))

        with torch.enable_grad(), warnings.catch_warnings():
            # Captum sets requires_grad on each step's input itself, and says so every time.
            warnings.filterwarnings("ignore", "Input Tensor 0 did not already require gradients")
            if method == "fgsm":
                out = FGSM(forward, _loss, lower_bound=0.0, upper_bound=1.0).perturb(pixels, epsilon, labels)
            else:
                out = PGD(forward, _loss, lower_bound=0.0, upper_bound=1.0).perturb(
                    pixels, radius=epsilon, step_size=epsilon / 4, step_num=PGD_STEPS, target=labels,
                    random_start=True)
    return out.detach().squeeze(1)


def attack_subset(data: MNIST, size: int = ATTACK_SUBSET) -> torch.Tensor:
    """Indices of the fixed test images the accuracy-against-ε curve uses: ``size`` drawn by a fixed seed (all of
    them when the test set is smaller), in test-set order."""
    n = len(data.test_labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))
    return order[: min(size, n)].sort().values


@dataclass(frozen=True)
class AttackCurve:
    epsilons: tuple[float, ...]
    accuracy: dict[str, list[float]]  # attack -> accuracy at each ε, on the subset
    images: int  # how many test images


def _curve_entry(run: LoadedRun, data: MNIST, size: int) -> CacheEntry:
    key = {"format": "digitlab-robustness-adversarial-1", "weights_sha256": run.weights_sha256,
           "test_sha256": split_fingerprint(data, "test"), "subset": f"{size} seed {SUBSET_SEED}",
           "epsilons": ",".join(f"{e:g}" for e in EPSILONS), "attacks": ",".join(ATTACKS),
           "pgd": f"{PGD_STEPS} steps of eps/4, random start, seed {ATTACK_SEED}"}
    return run_entry(run, "adversarial", key, {"accuracy": (len(ATTACKS), len(EPSILONS))}, CACHE_PREFIX)


def _curve(tensors: dict[str, torch.Tensor], images: int) -> AttackCurve:
    return AttackCurve(EPSILONS, dict(zip(ATTACKS, tensors["accuracy"].tolist())), images)


def adversarial_curve_cached(run: LoadedRun, data: MNIST, size: int | None = None) -> AttackCurve | None:
    """The run's accuracy against ε when it has been computed for these weights and test set, else None."""
    size = size or ATTACK_SUBSET
    found = _curve_entry(run, data, size).read()
    return None if found is None else _curve(found, len(attack_subset(data, size)))


def adversarial_curve(run: LoadedRun, data: MNIST | None = None, progress: Progress | None = None,
                      size: int | None = None) -> AttackCurve:
    """The run's accuracy under each attack at each of EPSILONS, on the fixed test subset (ATTACK_SUBSET images
    unless ``size`` says otherwise): read from the cache, or computed (about 70 forward and backward passes over
    the subset, PGD's 10 steps at each ε) and cached."""
    data = data or load_mnist()
    size = size or ATTACK_SUBSET
    index = attack_subset(data, size)

    def compute() -> dict[str, torch.Tensor]:
        configure_cpu()
        images, labels = data.test_images[index].float() / 255, data.test_labels[index]
        work = [(method, epsilon) for method in ATTACKS for epsilon in EPSILONS]
        accuracy = torch.zeros(len(ATTACKS), len(EPSILONS), dtype=torch.float64)
        for done, (method, epsilon) in enumerate(work, start=1):
            correct = 0
            for start in range(0, len(labels), 250):  # input gradients of a ResNet over 1,000 images at once: ~1 GB
                batch, truth = images[start : start + 250], labels[start : start + 250]
                adversarial = attack(run, batch, truth, epsilon, method)
                correct += (probabilities(run, adversarial).argmax(1) == truth).sum().item()
            accuracy[list(ATTACKS).index(method), EPSILONS.index(epsilon)] = correct / len(labels)
            if progress is not None:
                progress(done, len(work))
        return {"accuracy": accuracy}

    return _curve(cached(_curve_entry(run, data, size), compute), len(index))
