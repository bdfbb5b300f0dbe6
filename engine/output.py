"""The model's output path: final hidden states → logits through lm_head and any softcapping,
computed faster than the model's own lm_head call on a CPU.

Why: the unembedding is the largest matrix of a small model (Gemma 3 270M: 262,144 × 640, 671 MB
in float32) and every step reads all of it. On CPU, `linear(hidden, weight)` reaches it through
BLAS paths that are slow for a few rows: one row goes through a single-threaded matrix-vector
product (~15 GB/s), and 2–8 rows through a GEMM layout that runs at half the speed of
`weight @ hidden.T`. Measured here on 2 cores: 1 row 44 ms → 20 ms, 8 rows 75 ms → 37 ms.
The products are the same sums in another order (differences ~1e-7 relative).
Which path is faster depends on the processor and its BLAS (on another Xeon the transposed
product lost at 1 and 2 rows and won only at 8), so `unembed` times both once per matrix shape
and row count on first use (`unembed_choices` says what it chose) and takes the faster.

`reproduces_model_logits` checks once per model that the decoder's output through this path
equals the model's own logits, so a model that transforms its logits in some other way (a logit
scale, a bias we do not know) keeps using its own forward.
"""

from __future__ import annotations

import math
import threading
import time
import weakref

import torch

FAST_ROWS_MAX = 64  # beyond this BLAS's usual path is as fast
# How far another path to the logits may be from the model's own, relative to their size: the
# same arithmetic on the same vector differs by float rounding (~1e-6); more means a final step
# the path does not know.
OUTPUT_PATH_TOLERANCE = 1e-4


def softcapping(model) -> float | None:
    """The config's final logit softcap (Gemma 2: 30.0): logits → cap · tanh(logits / cap)."""
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    return float(cap) if cap else None


TIMING_REPEATS = 3
# (vocab, dim, dtype, row bucket) → whether the transposed product beat linear on this machine.
_choices: dict[tuple, bool] = {}
_choice_lock = threading.Lock()


def _transposed(weight: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    rows = hidden.shape[0]
    if rows == 1:  # two rows take the multi-threaded GEMM path; the copy is discarded
        hidden = torch.cat([hidden, hidden])
    return (weight @ hidden.T).T[:rows]


def _linear(weight: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(hidden, weight)


def _seconds(path, weight: torch.Tensor, probe: torch.Tensor) -> float:
    path(weight, probe)  # the first call pays for allocation and thread start-up
    best = math.inf
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        path(weight, probe)
        best = min(best, time.perf_counter() - started)
    return best


def _choice_key(weight: torch.Tensor, rows: int) -> tuple:
    bucket = 1 << (rows - 1).bit_length()  # 1, 2, 4, 8 … rows share a verdict
    return (*weight.shape, weight.dtype, bucket)


def _transposed_is_faster(weight: torch.Tensor, rows: int) -> bool:
    """Times both paths once for this shape and row bucket (a few passes over the matrix)."""
    key = _choice_key(weight, rows)
    with _choice_lock:
        if key not in _choices:
            with torch.no_grad():
                probe = torch.randn(key[-1], weight.shape[1], dtype=weight.dtype)
                _choices[key] = _seconds(_transposed, weight, probe) < _seconds(
                    _linear, weight, probe
                )
        return _choices[key]


def unembed_choices() -> dict[str, str]:
    """What unembed chose so far, for benchmarks: {"262144×640 float32, 1 row": "transposed"}."""
    return {
        f"{vocab}×{dim} {str(dtype).removeprefix('torch.')}, {bucket} row"
        + ("s" if bucket > 1 else ""): "transposed" if faster else "linear"
        for (vocab, dim, dtype, bucket), faster in sorted(
            _choices.items(), key=lambda item: (*item[0][:2], str(item[0][2]), item[0][3])
        )
    }


def unembed(weight: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """hidden (rows, dim) @ weight.T (dim, vocab) → (rows, vocab), by the path measured faster
    here for this many rows (BLAS's own beyond FAST_ROWS_MAX rows and off the CPU)."""
    rows = hidden.shape[0]
    if weight.device.type != "cpu" or not 1 <= rows <= FAST_ROWS_MAX:
        return _linear(weight, hidden)
    if _transposed_is_faster(weight, rows):
        return _transposed(weight, hidden)
    return _linear(weight, hidden)


def output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Final hidden states (..., dim), after the model's final norm → logits (..., vocab) as
    the model's lm_head and softcapping make them."""
    head = model.get_output_embeddings()
    flat = hidden.reshape(-1, hidden.shape[-1]).to(head.weight.dtype)
    logits = unembed(head.weight, flat)
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias
    cap = softcapping(model)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.reshape(*hidden.shape[:-1], logits.shape[-1])


def relative_gap(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The largest difference between two sets of logits, relative to the size of `theirs`."""
    return float((ours - theirs).abs().max()) / (1 + float(theirs.abs().max()))


_verdicts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_verdict_lock = threading.Lock()


@torch.inference_mode()
def reproduces_model_logits(model, device: torch.device) -> bool:
    """Whether the decoder's last hidden state through output_logits gives the model's own
    logits (checked once per model, on a few token ids)."""
    with _verdict_lock:
        if model not in _verdicts:
            vocab = model.get_output_embeddings().weight.shape[0]
            ids = torch.tensor([[1, 2, 3, 5, 8, 13]], device=device) % vocab
            theirs = model(input_ids=ids, use_cache=False).logits.float()
            hidden = model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
            ours = output_logits(model, hidden).float()
            _verdicts[model] = relative_gap(ours, theirs) <= OUTPUT_PATH_TOLERANCE
        return _verdicts[model]
