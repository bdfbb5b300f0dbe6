"""bfloat16 for the gradient methods, offered only where it is worth it and close enough.

bfloat16 halves the bytes each matrix multiply moves, and on processors with bfloat16 units
(recent GPUs, CPUs with AMX) multiplies several times faster; elsewhere it only loses
precision, or is slower (on AVX-512 CPUs without AMX torch's bfloat16 GEMM measured 0.4-0.5×
float32's). So the first time a model is asked for bfloat16 on a device, it is checked once:
does the device have it, is its matrix multiply faster there than float32's, and do
integrated gradients in bfloat16 agree with float32 on a calibration text (Pearson r ≥
MIN_CORRELATION)? Only then is it offered; otherwise the refusal says which test failed.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.limits import PRECISIONS
from engine.types import InputError

MIN_CORRELATION = 0.99
GEMM_SIZE = 1024


@dataclass(frozen=True)
class Bfloat16Check:
    """What decided whether bfloat16 is offered for one model on one device.

    speedup: float32 matrix-multiply time ÷ bfloat16's there (> 1: bfloat16 is faster);
    correlation: Pearson r of integrated-gradients scores in bfloat16 against float32 on the
    calibration text (None when an earlier test already failed)."""

    device: str
    supported: bool
    speedup: float | None = None
    correlation: float | None = None

    @property
    def offered(self) -> bool:
        return (
            self.supported
            and (self.speedup or 0) > 1
            and (self.correlation or 0) >= MIN_CORRELATION
        )

    @property
    def reason(self) -> str:
        if not self.supported:
            return f"this {self.device} has no bfloat16 support"
        if (self.speedup or 0) <= 1:
            return (
                f"on this {self.device} bfloat16's matrix multiply runs at {self.speedup:.2f}× "
                "float32's speed, so it would only cost precision"
            )
        if (self.correlation or 0) < MIN_CORRELATION:
            return (
                f"its scores correlate with float32's at r = {self.correlation:.4f} on the "
                f"calibration text, below the {MIN_CORRELATION} required"
            )
        return "offered"

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "supported": self.supported,
            "speedup": self.speedup,
            "correlation": self.correlation,
            "min_correlation": MIN_CORRELATION,
            "offered": self.offered,
            "reason": self.reason,
        }


def check_precision(precision) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}", field="precision")
    return precision


def supports_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def _best_seconds(call: Callable[[], object], device: torch.device, runs: int = 5) -> float:
    call()  # allocation, thread start-up, kernel choice
    best = float("inf")
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def gemm_speedup(device: torch.device) -> float:
    """float32 ÷ bfloat16 time of a (GEMM_SIZE²) @ (GEMM_SIZE²) product on `device`."""
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device).to(dtype)
        b = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device).to(dtype)
        seconds[dtype] = _best_seconds(lambda a=a, b=b: a @ b, device)
    return seconds[torch.float32] / seconds[torch.bfloat16]


def autocast(device: torch.device, precision: str):
    """The context the gradient methods run in: bfloat16 matrix multiplies under torch's
    autocast, or nothing for float32."""
    if precision == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def correlation(first: torch.Tensor, second: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([first.double(), second.double()]))[0, 1])


_checks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_checks_lock = threading.Lock()


def bfloat16_check(
    key: object, device: torch.device, calibrate: Callable[[], tuple[torch.Tensor, torch.Tensor]]
) -> Bfloat16Check:
    """The check for `key` (a LoadedModel) on `device`, made once: support, then speed, then
    calibrate() → (float32 scores, bfloat16 scores) for the correlation."""
    with _checks_lock:
        if key in _checks:
            return _checks[key]
        name = "GPU" if device.type == "cuda" else "processor"
        found = Bfloat16Check(device=name, supported=supports_bfloat16(device))
        if found.supported:
            found = Bfloat16Check(name, True, speedup=gemm_speedup(device))
        if found.supported and found.speedup > 1:
            found = Bfloat16Check(name, True, found.speedup, correlation(*calibrate()))
        _checks[key] = found
        return found


def forget_checks() -> None:
    with _checks_lock:
        _checks.clear()
