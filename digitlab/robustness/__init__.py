"""Robustness: how a model's answers hold up when its input is transformed, attacked or corrupted.

Every function takes loaded runs (digitlab.load_run). Images are floats on 0..1 (ink 1, background 0), (28, 28) or
(N, 28, 28), and become each run's own input through digitlab.inside.model_input.

- sweeps: one transformation (TRANSFORMS, perturb, sweep_values) over a range of values; the steps go through each
  model as one batch.
- attacks: FGSM and PGD from Captum and random ±ε sign noise (attack), and a run's accuracy against ε on a fixed
  1,000-image test subset (adversarial_curve), computed once and cached.
- corruptions: the 15 of MNIST-C (CORRUPTIONS, corrupt, corrupted_test_set), generated in code and cached, and a
  run's accuracy on each (corruption_benchmark), computed once and cached.
"""

from digitlab.robustness.attacks import (
    ATTACK_SEED,
    ATTACK_SUBSET,
    ATTACKS,
    EPSILON_MAX,
    EPSILONS,
    PGD_STEPS,
    SUBSET_SEED,
    AttackCurve,
    adversarial_curve,
    adversarial_curve_cached,
    attack,
    attack_subset,
    epsilon_error,
)
from digitlab.robustness.corruptions import (
    CORRUPTION_SEED,
    CORRUPTIONS,
    CORRUPTIONS_VERSION,
    Corruption,
    CorruptionResult,
    benchmark_cached,
    corrupt,
    corrupted_cached,
    corrupted_test_set,
    corruption_benchmark,
    format_table,
)
from digitlab.robustness.sweeps import (
    MAX_SWEEP_STEPS,
    NOISE_SEED,
    SWEEP_STEPS,
    TRANSFORMS,
    RobustnessError,
    Sweep,
    Transform,
    perturb,
    probabilities,
    sweep,
    sweep_errors,
    sweep_values,
)

__all__ = [
    "ATTACKS", "ATTACK_SEED", "ATTACK_SUBSET", "CORRUPTIONS", "CORRUPTIONS_VERSION", "CORRUPTION_SEED", "EPSILONS",
    "EPSILON_MAX", "MAX_SWEEP_STEPS", "NOISE_SEED", "PGD_STEPS", "SUBSET_SEED", "SWEEP_STEPS", "TRANSFORMS",
    "AttackCurve", "Corruption", "CorruptionResult", "RobustnessError", "Sweep", "Transform", "adversarial_curve",
    "adversarial_curve_cached", "attack", "attack_subset", "benchmark_cached", "corrupt", "corrupted_cached",
    "corrupted_test_set", "corruption_benchmark", "epsilon_error", "format_table", "perturb", "probabilities",
    "sweep", "sweep_errors", "sweep_values",
]
