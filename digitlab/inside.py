"""Inside a model: what each layer sees, which pixels decided, and which training images it finds alike.

Every function takes a loaded run (digitlab.load_run) and every ``image`` is a (1, 1, 28, 28) input as
model_input returns it. Attributions come from Captum. The penultimate-layer embeddings of the 60,000 training
images and the 2-D map of the 10,000 test images are computed once per run and cached in fp16 safetensors keyed by
the weights' hash: beside the run, or under DIGITLAB_CACHE (default ~/.cache/digitlab) when its folder is read-only.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.cache import CacheEntry, cached, is_cached, run_entry
from digitlab.data import MNIST, load_mnist, scale_pixels, split_fingerprint
from digitlab.device import bulk_inference, configure_cpu
from digitlab.input_norm import InputNormalization
from digitlab.models import Flatten
from digitlab.store import LoadedRun

METHODS = ("saliency", "integrated_gradients", "gradcam", "occlusion")
# The Inside page's first choice: it does best on the deletion test (digitlab.deletion; measured by bench --inside).
DEFAULT_METHOD = "occlusion"
IG_STEPS = 50
OCCLUSION_WINDOW, OCCLUSION_STRIDE = 4, 2
CACHE_FORMAT = "digitlab-inside-1"
CACHE_PREFIX = "inside"  # beside a run: inside-train.safetensors, inside-map.safetensors
_BATCH = 1000

Progress = Callable[[int, int], None]  # (done, total), called as work proceeds

_ACTIVATIONS = (nn.ReLU,)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_SKIPPED = (nn.Dropout, nn.Flatten, Flatten, nn.Identity, *_NORMS)  # not what a student names as a layer


class AttributionError(ValueError):
    """An attribution method that does not apply to this run's model, or an unknown one."""


def model_input(run: LoadedRun, image: torch.Tensor) -> torch.Tensor:
    """A (28, 28) or (N, 28, 28) float image on 0..1 (ink 1, background 0) -> the run's model input (N, 1, 28, 28),
    scaled the way that run was trained (its config.input_scaling). The one place pixels become input here."""
    return scale_pixels(image.float().reshape(-1, 1, 28, 28), run.config.input_scaling)


# --- feature maps ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureMap:
    name: str  # what a student calls it: "conv1", "pool1", "stem", "block2", "fc1", "output"
    module: str  # the path of the module it is read from, e.g. "3" (model[3])
    kind: str  # "conv", "pool", "residual block", "dense" or "output"
    values: torch.Tensor  # (C, H, W) for maps, (N,) for vectors; the output's are the 10 probabilities

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)


@dataclass(frozen=True)
class _Tap:
    """Where a feature map is read: the output of ``module``, passed through ``activation`` when the block applies
    its activation only after pooling (conv, BN, max-pool, ReLU: the conv's own map is ReLU(BN output))."""

    name: str
    kind: str
    module: str
    activation: nn.Module | None = None


def _taps(model: nn.Module) -> list[_Tap]:
    """The layers a student would name, in forward order, read off an nn.Sequential of digitlab.models' blocks."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"feature maps need an nn.Sequential model, got {type(model).__name__}")
    children = list(model.named_children())
    last_linear = max((i for i, (_, m) in enumerate(children) if isinstance(m, nn.Linear)), default=-1)
    first_block = next((i for i, (_, m) in enumerate(children) if _is_block(m)), len(children))
    counts: collections.Counter[str] = collections.Counter()

    def named(prefix: str, stem: bool = False) -> str:
        if stem:  # a ResNet's layers before its first block
            return "stem" if prefix == "conv" else "stem pool"
        counts[prefix] += 1
        return f"{prefix}{counts[prefix]}"

    taps, i = [], 0
    while i < len(children):
        path, module = children[i]
        # A block as _conv_block and _dense_block build it: the layer, then BatchNorm, a pool, an activation.
        end, pool, activation = path, None, None
        j = i + 1
        while j < len(children) and isinstance(children[j][1], (*_NORMS, *_POOLS, *_ACTIVATIONS)):
            following_path, following = children[j]
            if isinstance(following, _NORMS) and pool is None and activation is None:
                end = following_path
            elif isinstance(following, _POOLS) and pool is None and activation is None and isinstance(module, nn.Conv2d):
                pool = following_path
            elif isinstance(following, _ACTIVATIONS) and activation is None:
                activation = following_path
            else:
                break
            j += 1
        if isinstance(module, nn.Conv2d):
            stem = first_block < len(children) and i < first_block
            if pool is None:
                taps.append(_Tap(named("conv", stem), "conv", activation or end))
            else:
                taps.append(_Tap(named("conv", stem), "conv", end, model.get_submodule(activation) if activation else None))
                taps.append(_Tap(named("pool", stem), "pool", activation or pool))
            i = j
        elif isinstance(module, nn.Linear):
            if i == last_linear:
                taps.append(_Tap("output", "output", path))
            else:
                taps.append(_Tap(named("fc"), "dense", activation or end))
            i = j
        elif isinstance(module, _POOLS):
            taps.append(_Tap(named("pool"), "pool", activation or path))
            i = j
        elif isinstance(module, InputNormalization):  # what the first layer is given: the page taken away
            taps.append(_Tap("input", "normalised input", path))
            i += 1
        elif _is_block(module):
            taps.append(_Tap(named("block"), "residual block", path))
            i += 1
        elif isinstance(module, (*_SKIPPED, *_ACTIVATIONS)):
            i += 1
        else:
            taps.append(_Tap(named(type(module).__name__.lower()), type(module).__name__.lower(), path))
            i += 1
    return taps


def _is_block(module: nn.Module) -> bool:
    """A module of modules holding convs, such as a residual block: shown as one layer."""
    return any(isinstance(m, nn.Conv2d) for m in module.modules()) and not isinstance(module, nn.Conv2d)


_OWN: weakref.WeakKeyDictionary[nn.Module, tuple[nn.Module, threading.Lock]] = weakref.WeakKeyDictionary()
_OWN_LOCK = threading.Lock()


@contextlib.contextmanager
def _own_model(run: LoadedRun) -> Iterator[nn.Module]:
    """A private copy of the run's model, held by one caller at a time. The dashboard shares one model between all
    sessions, and the hooks put on it here (and Captum's) would fire on another session's forward pass."""
    with _OWN_LOCK:
        if run.model not in _OWN:
            _OWN[run.model] = (copy.deepcopy(run.model).eval(), threading.Lock())
        model, lock = _OWN[run.model]
    with lock:
        yield model


def feature_maps(run: LoadedRun, image: torch.Tensor) -> list[FeatureMap]:
    """The output of every layer a student would name, in forward order: conv and pooling outputs after their
    activation, a ResNet's stem and residual blocks, dense layers as vectors, and the 10 output probabilities.
    Dropout, BatchNorm and flatten are skipped."""
    with _own_model(run) as model:
        return _feature_maps(model, image)


def _feature_maps(model: nn.Module, image: torch.Tensor) -> list[FeatureMap]:
    taps = _taps(model)
    seen: dict[str, torch.Tensor] = {}
    caller = threading.get_ident()

    def reader(tap: _Tap):
        def hook(module, inputs, output):
            if threading.get_ident() == caller:
                # A clone: the in-place ReLU that follows would overwrite the tensor.
                value = output.detach().clone()[0]
                seen[tap.name] = tap.activation.forward(value) if tap.activation is not None else value
        return hook

    handles = [model.get_submodule(tap.module).register_forward_hook(reader(tap)) for tap in taps]
    try:
        with torch.inference_mode():
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    maps = []
    for tap in taps:
        values = seen[tap.name].float()
        if tap.kind == "output":
            values = torch.softmax(values, 0)
        maps.append(FeatureMap(tap.name, tap.module, tap.kind, values))
    return maps


def _gradcam_layer(model: nn.Module, image: torch.Tensor) -> tuple[str, nn.Module] | None:
    """The last conv-like layer whose output is at least 2x2, as (name, module), or None (an MLP)."""
    maps = {m.name: m for m in _feature_maps(model, image)}
    for tap in reversed(_taps(model)):
        shape = maps[tap.name].shape
        if tap.kind in ("conv", "pool", "residual block") and len(shape) == 3 and min(shape[1:]) >= 2:
            return tap.name, model.get_submodule(tap.module)
    return None


# --- filters ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    name: str  # the conv's module path, e.g. "0" or "3.conv1"; "fc1" for an MLP's first layer
    kernels: torch.Tensor  # (N, kh, kw): one image per output channel (or per hidden unit, 28x28)


def filters(run: LoadedRun) -> list[Filters]:
    """Each conv layer's kernels, averaged over their input channels (the first conv has one); 1x1 projections,
    a single number each, are left out. For a model without convs (an MLP), its first layer's weights, one 28x28
    image per hidden unit."""
    model = run.model
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    if convs:
        return [Filters(name, m.weight.detach().float().mean(1)) for name, m in convs]
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    return [Filters("fc1", first.weight.detach().float().reshape(-1, 28, 28))]


# --- attributions ----------------------------------------------------------------------------------------------


def attribution(run: LoadedRun, image: torch.Tensor, method: str, target: int | None = None) -> torch.Tensor:
    """A (28, 28) map of how much each pixel mattered to the predicted class, or to ``target``.

    saliency: |d output / d pixel|. integrated_gradients: from a black canvas in the run's own scaling, 50 steps,
    signed. gradcam: on the last conv layer whose output is at least 2x2, upsampled, non-negative. occlusion: a 4x4
    black window at stride 2, signed (how much the class score drops when it covers a pixel)."""
    if image.shape != (1, 1, 28, 28):
        raise ValueError(f"expected a (1, 1, 28, 28) input as model_input returns it, got {tuple(image.shape)}")
    return attributions(run, image, method, None if target is None else [target])[0]


def attributions(run: LoadedRun, images: torch.Tensor, method: str, targets: Sequence[int] | None = None
                 ) -> torch.Tensor:
    """attribution for a batch: inputs (N, 1, 28, 28) -> maps (N, 28, 28), each for the class the model predicts
    for it or for its entry of ``targets``. One Captum call for the whole batch."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

    if method not in METHODS:
        raise AttributionError(f"unknown attribution method {method!r}; known: {', '.join(METHODS)}")
    if images.dim() != 4 or images.shape[1:] != (1, 28, 28) or len(images) == 0:
        raise ValueError(f"expected (N, 1, 28, 28) inputs, N >= 1, as model_input returns them, got "
                         f"{tuple(images.shape)}")
    targets = None if targets is None else list(targets)  # Captum reads a tuple as one multi-index target
    for target in targets or ():
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target <= 9:
            raise AttributionError(f"target must be a digit from 0 to 9, got {target!r}")
    if targets is not None and len(targets) != len(images):
        raise AttributionError(f"got {len(targets)} targets for {len(images)} inputs; give one per input, or none")
    black = model_input(run, torch.zeros(28, 28))
    with _own_model(run) as model:
        if targets is None:
            with torch.inference_mode():
                targets = model(images).argmax(1).tolist()
        images = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            if method == "saliency":
                result = Saliency(model).attribute(images, target=targets, abs=True)
            elif method == "integrated_gradients":
                result = IntegratedGradients(model).attribute(images, black, target=targets, n_steps=IG_STEPS)
            elif method == "occlusion":
                window, stride = OCCLUSION_WINDOW, OCCLUSION_STRIDE
                result = Occlusion(model).attribute(images, sliding_window_shapes=(1, window, window),
                                                    strides=(1, stride, stride), baselines=black, target=targets,
                                                    perturbations_per_eval=64)
            else:
                layer = _gradcam_layer(model, images[:1].detach())
                if layer is None:
                    usable = ", ".join(m for m in METHODS if m != "gradcam")
                    raise AttributionError(f"gradcam needs a conv layer with an output of at least 2x2, and this "
                                           f"{run.config.model} has none; use {usable}")
                cam = LayerGradCam(model, layer[1]).attribute(images, target=targets, relu_attributions=True)
                result = LayerAttribution.interpolate(cam, (28, 28), interpolate_mode="bilinear")
    return result.detach()[:, 0].float()


def empty_map_reason(method: str, attribution_map: torch.Tensor) -> str | None:
    """Why ``attribution_map`` (28, 28), as ``attribution`` gave it for ``method``, is zero everywhere, for a
    person; None where it is not. Grad-CAM is zero on 45 of the first 300 real test digits for the shipped LeNet."""
    if attribution_map.abs().sum() > 0:
        return None
    if method == "gradcam":
        return ("Grad-CAM is zero everywhere here: on the last conv layer, the channels this input lights up lower "
                "the class's score on average, and Grad-CAM keeps only what raises it. A known limit of Grad-CAM "
                "on small nets; occlusion shows which pixels matter.")
    return "This map is zero everywhere for this input: no pixel moves the class's score."


# --- embeddings: nearest training images and the map of the test set ------------------------------------------


def penultimate_features(run: LoadedRun, images: torch.Tensor, progress: Progress | None = None, bulk: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D), logits (N, 10)) of model inputs (N, 1, 28, 28): the input of the model's last linear layer,
    in batches of 1,000. ``bulk`` runs in the CPU's fast precision (device.bulk_inference) rather than fp32."""
    configure_cpu()
    with _own_model(run) as model:
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        caller, seen = threading.get_ident(), []

        def hook(module, inputs):
            if threading.get_ident() == caller:
                seen.append(inputs[0].detach().float())

        handle = last.register_forward_pre_hook(hook)
        features, logits = [], []
        cpu = torch.device("cpu")
        try:
            with bulk_inference(model, cpu) if bulk else torch.inference_mode() as batch_format:
                for start in range(0, len(images), _BATCH):
                    batch = images[start : start + _BATCH]
                    logits.append(model(batch_format(batch) if bulk else batch).float())
                    features.append(seen.pop())
                    if progress is not None:
                        progress(min(start + _BATCH, len(images)), len(images))
        finally:
            handle.remove()
    return torch.cat(features), torch.cat(logits)


@dataclass(frozen=True)
class Embeddings:
    """The training images in penultimate space: unit rows (N, D), so a dot product is a cosine similarity."""

    features: torch.Tensor
    labels: torch.Tensor  # (N,)


def _key(run: LoadedRun, data: MNIST, split: str) -> dict[str, str]:
    return {"format": CACHE_FORMAT, "weights_sha256": run.weights_sha256,
            f"{split}_sha256": split_fingerprint(data, split)}


def _embeddings_entry(run: LoadedRun, data: MNIST) -> CacheEntry:
    return run_entry(run, "train", _key(run, data, "train"), {"features": (len(data.train_labels),)}, CACHE_PREFIX)


def _map_entry(run: LoadedRun, data: MNIST) -> CacheEntry:
    n = len(data.test_labels)
    return run_entry(run, "map", _key(run, data, "test"), {"xy": (n, 2), "predicted": (n,), "mean": (),
                                                           "components": ()}, CACHE_PREFIX)


def embeddings_cached(run: LoadedRun, data: MNIST) -> bool:
    """Whether training_embeddings will read them from a cache file rather than compute them."""
    return is_cached(_embeddings_entry(run, data))


def training_embeddings(run: LoadedRun, data: MNIST | None = None, progress: Progress | None = None) -> Embeddings:
    """The penultimate-layer features of every training image, read from the cache or computed (and cached)."""
    data = data or load_mnist()

    def compute() -> dict[str, torch.Tensor]:
        # In bulk precision (bf16 where the CPU has it): stored in fp16 anyway, and 2-3x faster than fp32. Queries
        # stay fp32; a training image still finds itself at similarity 1.000 (tests/test_inside.py).
        features = penultimate_features(run, run.input_from_image(data.train_images), progress, bulk=True)[0]
        return {"features": features.half()}

    features = cached(_embeddings_entry(run, data), compute)["features"]
    return Embeddings(F.normalize(features.float(), dim=1), data.train_labels)


@dataclass(frozen=True)
class Neighbour:
    index: int  # into the training set
    label: int
    similarity: float  # cosine, in penultimate space


def nearest_training_images(run: LoadedRun, image: torch.Tensor, k: int = 8, data: MNIST | None = None,
                            embeddings: Embeddings | None = None) -> list[Neighbour]:
    """The k training images closest to the input in the run's penultimate-layer features, by cosine similarity,
    most similar first. Pass ``embeddings`` (training_embeddings) to skip reading the cache file on each call."""
    embeddings = embeddings or training_embeddings(run, data)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(embeddings.labels):
        raise ValueError(f"k must be a whole number from 1 to {len(embeddings.labels):,}, got {k!r}")
    query = F.normalize(penultimate_features(run, image)[0], dim=1)[0]  # (D,)
    similarity, index = (embeddings.features @ query).topk(k)
    return [Neighbour(i, int(embeddings.labels[i]), s) for i, s in zip(index.tolist(), similarity.tolist())]


@dataclass(frozen=True)
class EmbeddingMap:
    """The test images on the first two principal components of the run's penultimate features."""

    xy: torch.Tensor  # (N, 2)
    labels: torch.Tensor  # (N,)
    predicted: torch.Tensor  # (N,)
    mean: torch.Tensor  # (D,): the features' mean, subtracted before projecting
    components: torch.Tensor  # (D, 2)

    def place(self, run: LoadedRun, image: torch.Tensor) -> tuple[float, float]:
        """Where an input lands on the map."""
        x, y = ((penultimate_features(run, image)[0][0] - self.mean) @ self.components).tolist()
        return x, y


def map_cached(run: LoadedRun, data: MNIST) -> bool:
    """Whether embedding_map will read it from a cache file rather than compute it."""
    return is_cached(_map_entry(run, data))


def embedding_map(run: LoadedRun, data: MNIST | None = None, progress: Progress | None = None) -> EmbeddingMap:
    """A 2-D map of the test images in penultimate space by PCA, with their labels and the run's predictions."""
    data = data or load_mnist()

    def compute() -> dict[str, torch.Tensor]:
        features, logits = penultimate_features(run, run.input_from_image(data.test_images), progress)
        mean = features.mean(0)
        centred = features - mean
        # The top two eigenvectors of the covariance (D, D): exact and deterministic, unlike a randomised PCA.
        _, vectors = torch.linalg.eigh(centred.T @ centred)
        components = vectors[:, [-1, -2]]
        # An eigenvector's sign is arbitrary: fix it so the map does not flip between machines.
        components = components * components.sum(0).sign().where(components.sum(0) != 0, 1.0)
        return {"xy": (centred @ components).half(), "predicted": logits.argmax(1).to(torch.uint8), "mean": mean,
                "components": components}

    found = cached(_map_entry(run, data), compute)
    return EmbeddingMap(found["xy"].float(), data.test_labels, found["predicted"].long(), found["mean"],
                        found["components"])
