"""Token attribution: which input tokens drove the model's prediction of one token.

The explained position p is a token of the sequence; the model reads tokens 0..p and its
prediction for the token after p is explained (for a generated token at index j, p = j - 1).
Two methods read attention; three differentiate the objective, the log-probability of the
target token at p, with respect to the input embeddings, the output of the model's embedding
module (so Gemma's √hidden scaling is part of them). The log-probability rather than the logit
because it is what sampling sees: raising every logit alike changes nothing.

Integrated gradients starts from a baseline sequence of the same length that holds a blank
(the token of a lone space; the pad token where a tokenizer has none) at every position but
the first and the special tokens (see baseline_ids), and integrates the gradient along the
straight path from it to the real embeddings with Captum's Gauss-Legendre rule. Each token's
score is summed over the hidden dimension, and the scores add up to f(input) - f(baseline)
plus the convergence delta. These models' paths are rough: the log-probability can jump by
several nats within 1 % of the path, so a fixed number of steps often misses by more than the
change it explains. By default the path is therefore cut into segments, each integrated by
Captum with POINTS_PER_SEGMENT points, and the segment whose own delta (its scores against
f at its two ends) is largest is halved again and again until the whole path's delta, and
every segment's own, is at most AUTO_TOLERANCE of |f(input) - f(baseline)| (adaptive
quadrature); a fixed n_steps integrates the whole path in one piece, as before.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch

from engine.attention import capture_attention
from engine.attribution_results import (  # split out of this module
    Attribution,
    PathSummary,
    Question,
    Scores,
)
from engine.limits import ATTRIBUTION_METHODS as METHODS
from engine.limits import (
    AUTO_FIRST_STEPS,
    AUTO_MAX_STEPS,
    AUTO_TOLERANCE,
    DEFAULT_STEPS,
    MAX_STEPS,
)
from engine.loading import LoadedModel, Progress
from engine.precision import Bfloat16Check, autocast, bfloat16_check, check_precision
from engine.tokenization import read_model_sequence, token_text
from engine.types import InputError, TokenPiece

logger = logging.getLogger(__name__)

MAX_TOKENS = 1024  # the gradient methods keep every layer's activations of each step
# Path points per forward/backward pass (Captum's internal_batch_size): about this many
# tokens per pass ran fastest on CPU (SmolLM2: 16 steps at 64 tokens, 4 at 256; larger
# batches were slower per step), and it bounds the activations kept for the backward pass.
TOKENS_PER_PASS = 1024
CACHE_SIZE = 64


# --- Checking the request ------------------------------------------------------------------


def _check_choices(method, n_steps) -> None:
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}", field="method")
    if n_steps is None:  # adaptive
        return
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= MAX_STEPS:
        raise InputError(
            f"n_steps must be a whole number from 1 to {MAX_STEPS}, or left out to refine the "
            "path until it converges",
            field="n_steps",
        )


def _check_position(position, count: int) -> int:
    if position is None:
        return count - 1
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < count:
        raise InputError(
            f"position {position!r} is not a token of this sequence (0–{count - 1})",
            field="position",
        )
    return position


def _check_target(target_id, loaded: LoadedModel) -> int:
    vocab = min(loaded.info.vocab_size, len(loaded.tokenizer))
    if isinstance(target_id, bool) or not isinstance(target_id, int) or not 0 <= target_id < vocab:
        raise InputError(
            f"Token id {target_id!r} is outside this model's vocabulary (0–{vocab - 1})",
            field="target_id",
        )
    return target_id


def _read_tokens(loaded: LoadedModel, text: str, sequence_options) -> tuple[TokenPiece, ...]:
    tokens = read_model_sequence(loaded, text, **sequence_options).tokens
    if len(tokens) > MAX_TOKENS:
        raise InputError(
            f"The text is {len(tokens):,} tokens long; attributions are computed for at most "
            f"{MAX_TOKENS:,} tokens",
            field="text",
        )
    return tokens


# --- The methods ---------------------------------------------------------------------------


@torch.inference_mode()
def _log_probability(loaded: LoadedModel, question: Question) -> float:
    logits = loaded.model(
        input_ids=torch.tensor([question.ids], device=loaded.device),
        logits_to_keep=1,
        use_cache=False,
    ).logits  # (1, 1, vocab)
    return float(torch.log_softmax(logits[0, -1].float(), -1)[question.target_id])


def _attention_scores(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    progress("Attention: reading the last layer")
    last = loaded.info.n_layers - 1
    captured = capture_attention(  # the explained row, averaged over heads: (keys,)
        loaded, list(question.ids), (last,), reduce=lambda maps: maps[:, -1].float().mean(0).cpu()
    )
    return Scores(captured[last], _log_probability(loaded, question))


def _rollout_scores(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    """Abnar & Zuidema (2020): R = Â_L ··· Â_1 with Â = rows-normalized(mean-over-heads A + I);
    only the explained row is needed, so a row vector is carried down from the top layer."""
    progress("Attention rollout: reading every layer")
    layers = tuple(range(loaded.info.n_layers))
    means = capture_attention(  # {layer: (n, n)} on the model's device
        loaded, list(question.ids), layers, reduce=lambda maps: maps.float().mean(0)
    )
    identity = torch.eye(len(question.ids), device=loaded.device)
    row = identity[-1]  # (n,)
    for layer in reversed(layers):
        mixed = means[layer] + identity
        row = row @ (mixed / mixed.sum(-1, keepdim=True))
    return Scores(row.cpu(), _log_probability(loaded, question))


class _Objective:
    """The function Captum differentiates: embeddings (batch, n, hidden) → (batch,) log p(target)
    at the last position. It remembers its value at the real input and at the baseline (Captum
    evaluates both without gradients for the convergence delta) and counts path steps."""

    def __init__(self, model, target_id: int, inputs, baseline=None, on_step=None):
        self.model, self.target_id = model, target_id
        self.inputs, self.baseline = inputs, baseline
        self.on_step = on_step or (lambda _done: None)
        self.steps_done = 0
        self.at_input: float | None = None
        self.at_baseline: float | None = None

    def __call__(self, embeds: torch.Tensor) -> torch.Tensor:
        logits = self.model(inputs_embeds=embeds, logits_to_keep=1, use_cache=False).logits
        values = torch.log_softmax(logits[:, -1].float(), -1)[:, self.target_id]  # (batch,)
        if embeds is self.inputs:
            self.at_input = float(values[0].detach())
        elif embeds is self.baseline:
            self.at_baseline = float(values[0].detach())
        elif torch.is_grad_enabled():
            self.steps_done += embeds.shape[0]
            self.on_step(self.steps_done)
        return values


def _embeddings(loaded: LoadedModel, ids) -> torch.Tensor:
    """(1, n, hidden) what the first layer receives, as a leaf that requires grad."""
    with torch.no_grad():
        embeds = loaded.model.get_input_embeddings()(torch.tensor([ids], device=loaded.device))
    return embeds.requires_grad_()


def _gradient_scores(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    """Saliency (the gradient's L2 norm over the hidden dimension) or input × gradient (summed
    over it), from one forward and backward pass."""
    from captum.attr import InputXGradient, Saliency

    label = "Saliency" if question.method == "saliency" else "Input × gradient"
    progress(f"{label}: one backward pass")
    inputs = _embeddings(loaded, question.ids)
    objective = _Objective(loaded.model, question.target_id, inputs)
    if question.method == "saliency":
        scores = Saliency(objective).attribute(inputs, abs=False)[0].norm(dim=-1)  # (n,)
    else:
        scores = InputXGradient(objective).attribute(inputs)[0].sum(-1)  # (n,)
    return Scores(scores.detach().cpu(), objective.at_input)


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def blank_id(tokenizer) -> int:
    """The token integrated gradients' baseline holds: a lone space where the tokenizer has
    it as one ordinary token, else the pad token. With SmolLM2's chat template the path
    from the pad token (<|im_end|>, an end of turn) swung 10× as far as it went, the path
    from spaces 2.4× (total variation of f ÷ |f(text) − f(baseline)|), and its integral
    needed 72 points where the pad's needed 376 to converge to 5 %."""
    ids = tokenizer.encode(" ", add_special_tokens=False)
    if len(ids) == 1 and ids[0] not in set(tokenizer.all_special_ids):
        return int(ids[0])
    return _pad_id(tokenizer)


def baseline_ids(tokenizer, ids, special) -> list[int]:
    """The integrated-gradients baseline: a blank (blank_id) in place of every token but the
    first and the special ones (BOS, chat markers), which stay. Models park attention on the
    first token (an "attention sink"); replacing it makes the path jump (SmolLM2's
    log-probability moved 7 nats within 1% of it) and the integral converge far worse. The
    kept tokens score 0 by construction."""
    blank = blank_id(tokenizer)
    kept = (True, *special[1:])
    return [token if keep else blank for token, keep in zip(ids, kept, strict=True)]


POINTS_PER_SEGMENT = 4  # Gauss-Legendre points per segment of the adaptive path
ABSOLUTE_TOLERANCE = 1e-3  # nats: a delta this small is small whatever the change it explains


@dataclasses.dataclass(frozen=True)
class _Segment:
    """Integrated gradients over [start, end] of the path: scores (n,) summed over the hidden
    dimension, and delta = sum(scores) - (f(end) - f(start)), this segment's own error."""

    start: float
    end: float
    scores: torch.Tensor
    delta: float


class _Path:
    """The straight path from the baseline's embeddings (alpha 0) to the input's (alpha 1):
    f anywhere on it (each point computed once), and Captum's integrated gradients over any
    segment of it, counting the points whose gradients were taken."""

    def __init__(self, loaded: LoadedModel, question: Question, start_ids, on_points):
        from captum.attr import IntegratedGradients

        with torch.no_grad():
            self.inputs = _embeddings(loaded, question.ids).detach()
            self.baseline = _embeddings(loaded, start_ids).detach()
        self.n_tokens = len(question.ids)
        self.objective = _Objective(loaded.model, question.target_id, None, on_step=on_points)
        self._integrated = IntegratedGradients(self.objective)
        self._f: dict[float, float] = {}

    @property
    def points(self) -> int:
        return self.objective.steps_done

    def at(self, alpha: float) -> torch.Tensor:
        return self.baseline + alpha * (self.inputs - self.baseline)

    def f(self, alpha: float) -> float:
        self.compute_f([alpha])
        return self._f[alpha]

    def compute_f(self, alphas) -> None:
        """f at each of alphas not computed yet, in forward passes of TOKENS_PER_PASS."""
        missing = sorted(set(alphas) - self._f.keys())
        rows = max(1, TOKENS_PER_PASS // self.n_tokens)
        with torch.no_grad():
            for first in range(0, len(missing), rows):
                chunk = missing[first : first + rows]
                values = self.objective(torch.cat([self.at(alpha) for alpha in chunk]))
                self._f.update(zip(chunk, values.tolist(), strict=True))

    def segments(self, bounds: list[tuple[float, float]], n_points: int) -> list[_Segment]:
        """Integrated gradients over each (start, end) of bounds, n_points each, all in one
        Captum call: each segment is one example of its batch, so short texts still fill a
        pass (TOKENS_PER_PASS tokens)."""
        attributions = self._integrated.attribute(
            torch.cat([self.at(end) for _start, end in bounds]),
            baselines=torch.cat([self.at(start) for start, _end in bounds]),
            n_steps=n_points,
            method="gausslegendre",
            internal_batch_size=max(len(bounds), TOKENS_PER_PASS // self.n_tokens),
        )
        scores = attributions.sum(-1).detach()  # (segments, n)
        self.compute_f([alpha for bound in bounds for alpha in bound])
        return [
            _Segment(start, end, row, float(row.sum()) - (self._f[end] - self._f[start]))
            for (start, end), row in zip(bounds, scores, strict=True)
        ]


def converged(segments: list[_Segment], tolerance: float) -> bool:
    """The whole path's delta (Captum's: the scores' sum against the change) is within
    tolerance, and so is every segment's own: a lucky cancellation between segments can
    lower the sum, but no single unresolved jump in f is left larger than the tolerance."""
    total = abs(sum(segment.delta for segment in segments))
    return total <= tolerance and max(abs(segment.delta) for segment in segments) <= tolerance


def _to_split(segments: list[_Segment], tolerance: float, rows: int) -> list[_Segment]:
    """The segments to halve next: the worst one, and as many of the others still missing by
    over a quarter of the tolerance as fill one pass of `rows` path points."""
    ranked = sorted(segments, key=lambda segment: -abs(segment.delta))
    room = max(1, rows // (2 * POINTS_PER_SEGMENT))
    return ranked[:1] + [s for s in ranked[1:room] if abs(s.delta) > tolerance / 4]


def _refined_segments(path: _Path, tolerance: float, progress: Progress) -> list[_Segment]:
    """Adaptive quadrature: AUTO_FIRST_STEPS points in equal segments, then the segments with
    the largest |delta| are halved until the path has converged (see converged) or
    AUTO_MAX_STEPS points are spent."""
    count = AUTO_FIRST_STEPS // POINTS_PER_SEGMENT
    first = [(i / count, (i + 1) / count) for i in range(count)]
    segments = path.segments(first, POINTS_PER_SEGMENT)
    rows = max(1, TOKENS_PER_PASS // path.n_tokens)
    while True:
        delta = abs(sum(segment.delta for segment in segments))
        change = abs(path.f(1.0) - path.f(0.0))
        progress(
            f"Integrated gradients: {path.points} of {AUTO_MAX_STEPS} steps at most, delta "
            f"{delta / max(change, 1e-12):.0%} of the change (refining to {AUTO_TOLERANCE:.0%})"
        )
        left = (AUTO_MAX_STEPS - path.points) // (2 * POINTS_PER_SEGMENT)
        if converged(segments, tolerance) or left < 1:
            return segments
        worst = _to_split(segments, tolerance, rows)[:left]
        halves = []
        for segment in worst:
            segments.remove(segment)
            middle = (segment.start + segment.end) / 2
            halves += [(segment.start, middle), (middle, segment.end)]
        segments += path.segments(halves, POINTS_PER_SEGMENT)


def _integrated_gradients_scores(
    loaded: LoadedModel, question: Question, progress: Progress
) -> Scores:
    n_steps, adaptive = question.n_steps, question.n_steps is None
    start_ids = baseline_ids(loaded.tokenizer, question.ids, question.special)
    planned = f"{n_steps} steps" if n_steps else f"{AUTO_MAX_STEPS} steps at most"
    progress(f"Integrated gradients: 0 of {planned}")
    path = _Path(
        loaded,
        question,
        start_ids,
        on_points=lambda done: progress(f"Integrated gradients: {done} of {planned}"),
    )
    change = path.f(1.0) - path.f(0.0)
    tolerance = max(AUTO_TOLERANCE * abs(change), ABSOLUTE_TOLERANCE)
    if adaptive:
        segments = _refined_segments(path, tolerance, progress)
    else:
        segments = path.segments([(0.0, 1.0)], n_steps)
    bound = sum(abs(segment.delta) for segment in segments)
    blank = blank_id(loaded.tokenizer)
    summary = PathSummary(
        n_steps=path.points,
        baseline_id=blank,
        baseline_text=token_text(loaded.tokenizer, blank)[0],
        kept_positions=tuple(
            i for i, (a, b) in enumerate(zip(question.ids, start_ids, strict=True)) if a == b
        ),
        f_input=path.f(1.0),
        f_baseline=path.f(0.0),
        convergence_delta=sum(segment.delta for segment in segments),
        adaptive=adaptive,
        segments=len(segments),
        delta_bound=bound,
        tolerance=tolerance if adaptive else None,
        largest_segment_delta=max(abs(segment.delta) for segment in segments),
    )
    scores = torch.stack([segment.scores for segment in segments]).sum(0).cpu()  # (n,)
    return Scores(scores, path.f(1.0), summary)


SCORERS: dict[str, Callable[[LoadedModel, Question, Progress], Scores]] = {
    "attention": _attention_scores,
    "rollout": _rollout_scores,
    "saliency": _gradient_scores,
    "input_x_gradient": _gradient_scores,
    "integrated_gradients": _integrated_gradients_scores,
}


def _score(loaded: LoadedModel, question: Question, progress: Progress) -> Scores:
    """Gradients must flow even when a caller works under inference_mode; the model's weights
    get no .grad (Captum asks torch.autograd.grad for the embeddings' gradients only)."""
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        autocast(loaded.device, question.precision),
    ):
        return SCORERS[question.method](loaded, question, progress)


CALIBRATION_TEXT = (
    "The lighthouse keeper climbed the stairs every evening and wrote the weather in a book "
    "that nobody ever read, until one winter a ship"
)


def calibration_scores(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32, bfloat16) integrated-gradients scores (16 steps) explaining
    CALIBRATION_TEXT's last token: what the bfloat16 check correlates."""
    ids = [t.id for t in read_model_sequence(loaded, CALIBRATION_TEXT).tokens]
    scores = []
    for precision in ("float32", "bfloat16"):
        question = Question(
            ids=tuple(ids[:-1]),
            special=(True,) + (False,) * (len(ids) - 2),
            target_id=ids[-1],
            method="integrated_gradients",
            n_steps=16,
            precision=precision,
        )
        scores.append(_score(loaded, question, lambda _stage: None).scores)
    return scores[0], scores[1]


def bfloat16_for(loaded: LoadedModel) -> Bfloat16Check:
    """Whether bfloat16 is offered for this model on its device (engine/precision.py)."""
    return bfloat16_check(loaded, loaded.device, lambda: calibration_scores(loaded))


def _check_bfloat16(loaded: LoadedModel, method: str, precision: str) -> Bfloat16Check | None:
    """The model's bfloat16 check when bfloat16 is asked for a gradient method (InputError
    naming why when it is not offered); None for float32 and the attention methods."""
    if precision != "bfloat16" or method in ("attention", "rollout"):
        return None
    found = bfloat16_for(loaded)
    if not found.offered:
        raise InputError(f"bfloat16 is not offered here: {found.reason}", field="precision")
    return found


# --- Device fallback and cache -------------------------------------------------------------

_cpu_copies: weakref.WeakKeyDictionary[LoadedModel, LoadedModel] = weakref.WeakKeyDictionary()
_cpu_copies_lock = threading.Lock()


def cpu_copy(loaded: LoadedModel) -> LoadedModel:
    """A CPU twin of a model (made once per LoadedModel), for work its GPU could not do.

    Built from the config and a CPU copy of the weights: copy.deepcopy would first duplicate
    the weights on the GPU that just ran out of memory."""
    with _cpu_copies_lock:
        if loaded not in _cpu_copies:
            cpu = torch.device("cpu")
            with cpu:
                twin = type(loaded.model)(copy.deepcopy(loaded.model.config))
            twin.load_state_dict({k: v.to(cpu) for k, v in loaded.model.state_dict().items()})
            info = dataclasses.replace(loaded.info, device="cpu")
            _cpu_copies[loaded] = dataclasses.replace(
                loaded, model=twin.eval(), device=cpu, info=info
            )
        return _cpu_copies[loaded]


def _score_with_fallback(loaded: LoadedModel, *args) -> tuple[Scores, str]:
    """(scores, device used): a method that fails on a CUDA device runs again on CPU."""
    try:
        return _score(loaded, *args), loaded.device.type
    except RuntimeError as exc:  # CUDA out of memory, launch failures, unsupported kernels
        if loaded.device.type != "cuda":
            raise
        logger.warning("Attribution failed on %s (%s); retrying on CPU", loaded.device, exc)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return _score(cpu_copy(loaded), *args), "cpu"


_cache: OrderedDict[tuple, Attribution] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple, compute: Callable[[], Attribution]) -> Attribution:
    """The result for key from a small in-process LRU, computed on a miss."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    result = compute()
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def attribute(
    loaded: LoadedModel,
    text: str,
    *,
    target_id: int,
    method: str,
    position: int | None = None,
    n_steps: int | None = DEFAULT_STEPS,
    progress: Progress | None = None,
    cache_scope: str = "",
    precision: str = "float32",
    **sequence_options,
) -> Attribution:
    """Score every token 0..position of `text` (+ sequence_options: system_prompt,
    use_chat_template, completion_ids) by how much it drove `target_id` as the next token
    after `position` (default: the last token). n_steps is used by integrated_gradients only:
    None refines the path until its delta is at most AUTO_TOLERANCE of the change.
    precision: "bfloat16" runs the gradient methods under bfloat16 autocast where it is
    offered (bfloat16_for). Results are cached in-process per cache_scope (one person's), so
    asking again is instant for them and tells nobody else what was asked."""
    _check_choices(method, n_steps)
    bfloat16 = _check_bfloat16(loaded, method, check_precision(precision))
    tokens = _read_tokens(loaded, text, sequence_options)
    position = _check_position(position, len(tokens))
    target_id = _check_target(target_id, loaded)
    tokens = tokens[: position + 1]
    question = Question(
        ids=tuple(token.id for token in tokens),
        special=tuple(token.special for token in tokens),
        target_id=target_id,
        method=method,
        n_steps=n_steps if method == "integrated_gradients" else 0,
        precision="bfloat16" if bfloat16 else "float32",
    )

    def compute() -> Attribution:
        found, device = _score_with_fallback(loaded, question, progress or (lambda _stage: None))
        return Attribution(
            method=method,
            position=position,
            tokens=tokens,
            scores=tuple(float(score) for score in found.scores.tolist()),
            target_id=target_id,
            target_text=token_text(loaded.tokenizer, target_id)[0],
            target_probability=math.exp(found.log_probability),
            device=device,
            path=found.path,
            bfloat16=bfloat16,
        )

    return _cached((loaded.spec.key, cache_scope, question), compute)
