"""The one place that knows about accelerators: which device to use, and how to run fast on it."""

from __future__ import annotations

import contextlib
import os

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Devices with fused SGD, Adam and AdamW kernels (torch's own list is private).
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda", "mps")


class DeviceUnavailableError(RuntimeError):
    pass


def available_devices() -> list[str]:
    """In order of preference."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def pick_device(requested: str = "auto") -> torch.device:
    """cuda, then mps, then cpu; an explicit request is honoured or fails with what is available."""
    found = available_devices()
    if requested == "auto":
        return torch.device(found[0])
    if requested not in DEVICE_CHOICES:
        raise DeviceUnavailableError(f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if requested not in found:
        raise DeviceUnavailableError(
            f"device {requested!r} is not available on this machine; available: {', '.join(found)}"
        )
    return torch.device(requested)


def cpu_threads() -> int:
    """Torch threads for CPU work: DIGITLAB_THREADS, else one per core."""
    override = os.environ.get("DIGITLAB_THREADS", "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise ValueError(f"DIGITLAB_THREADS must be a whole number, got {override!r}") from None
    return os.cpu_count() or 1


def configure_cpu(threads: int | None = None) -> int:
    # Denormal floats appear in the weights after a few hundred steps and are very slow on x86: 5-10x here.
    torch.set_flush_denormal(True)
    threads = threads or cpu_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread inside the block. For one image, ops this small gain nothing from a second thread,
    and on a busy machine (a browser drawing on the other core) every op would wait for it, many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prepare(device: torch.device) -> None:
    """Per-device speed settings, called once before training or inference."""
    if device.type == "cpu":
        configure_cpu()
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def cpu_has_fast_bf16() -> bool:
    """x86 CPUs with AMX or AVX512-BF16 run bf16 convolutions and matmuls natively (2x faster here); on others
    bf16 is emulated and slower than fp32."""
    checks = (getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None))
    return any(check is not None and check() for check in checks)


def supported_precisions(device: torch.device) -> tuple[str, ...]:
    """The training precisions ``device`` can run: fp16 on CUDA and MPS (with loss scaling), bf16 on CUDA cards
    that have it and on any CPU (native with AMX or AVX512-BF16, emulated and slow elsewhere)."""
    if device.type == "cuda":
        return ("fp32", "bf16", "fp16") if torch.cuda.is_bf16_supported() else ("fp32", "fp16")
    if device.type == "mps":
        return ("fp32", "fp16")
    return ("fp32", "bf16")


def auto_precision(device: torch.device) -> str:
    """What precision="auto" trains in: bf16 on CUDA cards and CPUs that have it natively, fp16 on older CUDA
    cards and on MPS, else fp32."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def resolve_precision(device: torch.device, requested: str = "auto") -> str:
    """The precision a run on ``device`` trains in: fp32, bf16 or fp16. Recorded with the run."""
    if requested == "auto":
        return auto_precision(device)
    if requested not in supported_precisions(device):
        raise DeviceUnavailableError(f"precision {requested!r} is not available on {device.type}; choose auto or "
                                     f"one of {', '.join(supported_precisions(device))}")
    return requested


_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass in a resolved ``precision``; fp32 runs as it is."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def bulk_inference(model: torch.nn.Module, device: torch.device):
    """Inference over thousands of images with no gradients, where a few bits of precision are worth a 2-3x speed-up:
    autocast in the device's fast precision (auto_precision) and channels_last for convolutions. Measured on this
    2-core CPU, 60,000 training images through the shipped CNN: 24-37 s in fp32, 11-15 s in bf16 channels_last.
    Yields the function that puts a batch into the model's memory format; the model's format is restored after."""
    model.to(memory_format=torch.channels_last)
    try:
        with torch.inference_mode(), autocast(device, auto_precision(device)):
            yield lambda batch: batch.contiguous(memory_format=torch.channels_last)
    finally:
        model.to(memory_format=torch.contiguous_format)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (the scaler is then a no-op)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def describe(device: torch.device) -> str:
    """What a person wants to read in the sidebar: "CPU, 1 thread", "CUDA: NVIDIA H100", "Apple MPS"."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"
