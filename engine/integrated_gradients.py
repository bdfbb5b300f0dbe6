"""Integrated gradients over the straight path from a baseline of blanks to the input's
embeddings, refined until it converges (see engine/attribution.py for the methods and why),
and the differentiable objective the gradient methods share.

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
quadrature); a fixed n_steps integrates the whole path in one piece.
"""

from __future__ import annotations

import dataclasses

import torch

from engine.attribution_results import PathSummary, Question, Scores
from engine.limits import AUTO_FIRST_STEPS, AUTO_MAX_STEPS, AUTO_TOLERANCE
from engine.loading import LoadedModel, Progress
from engine.tokenization import token_text

# Path points per forward/backward pass (Captum's internal_batch_size): about this many
# tokens per pass ran fastest on CPU (SmolLM2: 16 steps at 64 tokens, 4 at 256; larger
# batches were slower per step), and it bounds the activations kept for the backward pass.
TOKENS_PER_PASS = 1024


class Objective:
    """The function Captum differentiates: embeddings (batch, n, hidden) → (batch,) log p(target)
    at the last position. It remembers its value at `inputs` (when given) and counts the path
    points whose gradients were taken."""

    def __init__(self, model, target_id: int, inputs=None, on_step=None):
        self.model, self.target_id, self.inputs = model, target_id, inputs
        self.on_step = on_step or (lambda _done: None)
        self.steps_done = 0
        self.at_input: float | None = None

    def __call__(self, embeds: torch.Tensor) -> torch.Tensor:
        logits = self.model(inputs_embeds=embeds, logits_to_keep=1, use_cache=False).logits
        values = torch.log_softmax(logits[:, -1].float(), -1)[:, self.target_id]  # (batch,)
        if embeds is self.inputs:
            self.at_input = float(values[0].detach())
        elif torch.is_grad_enabled():
            self.steps_done += embeds.shape[0]
            self.on_step(self.steps_done)
        return values


def embeddings(loaded: LoadedModel, ids) -> torch.Tensor:
    """(1, n, hidden) what the first layer receives, as a leaf that requires grad."""
    with torch.no_grad():
        embeds = loaded.model.get_input_embeddings()(torch.tensor([ids], device=loaded.device))
    return embeds.requires_grad_()


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
class Segment:
    """Integrated gradients over [start, end] of the path: scores (n,) summed over the hidden
    dimension, and delta = sum(scores) - (f(end) - f(start)), this segment's own error."""

    start: float
    end: float
    scores: torch.Tensor
    delta: float


class Path:
    """The straight path from the baseline's embeddings (alpha 0) to the input's (alpha 1):
    f anywhere on it (each point computed once), and Captum's integrated gradients over any
    segment of it, counting the points whose gradients were taken."""

    def __init__(self, loaded: LoadedModel, question: Question, start_ids, on_points):
        from captum.attr import IntegratedGradients

        with torch.no_grad():
            self.inputs = embeddings(loaded, question.ids).detach()
            self.baseline = embeddings(loaded, start_ids).detach()
        self.n_tokens = len(question.ids)
        self.objective = Objective(loaded.model, question.target_id, on_step=on_points)
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

    def segments(self, bounds: list[tuple[float, float]], n_points: int) -> list[Segment]:
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
            Segment(start, end, row, float(row.sum()) - (self._f[end] - self._f[start]))
            for (start, end), row in zip(bounds, scores, strict=True)
        ]


def converged(segments: list[Segment], tolerance: float) -> bool:
    """The whole path's delta (Captum's: the scores' sum against the change) is within
    tolerance, and so is every segment's own: a lucky cancellation between segments can
    lower the sum, but no single unresolved jump in f is left larger than the tolerance."""
    total = abs(sum(segment.delta for segment in segments))
    return total <= tolerance and max(abs(segment.delta) for segment in segments) <= tolerance


def _to_split(segments: list[Segment], tolerance: float, rows: int) -> list[Segment]:
    """The segments to halve next: the worst one, and as many of the others still missing by
    over a quarter of the tolerance as fill one pass of `rows` path points."""
    ranked = sorted(segments, key=lambda segment: -abs(segment.delta))
    room = max(1, rows // (2 * POINTS_PER_SEGMENT))
    return ranked[:1] + [s for s in ranked[1:room] if abs(s.delta) > tolerance / 4]


def _refined_segments(path: Path, tolerance: float, progress: Progress) -> list[Segment]:
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


def integrated_gradients_scores(
    loaded: LoadedModel, question: Question, progress: Progress
) -> Scores:
    n_steps, adaptive = question.n_steps, question.n_steps is None
    start_ids = baseline_ids(loaded.tokenizer, question.ids, question.special)
    planned = f"{n_steps} steps" if n_steps else f"{AUTO_MAX_STEPS} steps at most"
    progress(f"Integrated gradients: 0 of {planned}")
    path = Path(
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
