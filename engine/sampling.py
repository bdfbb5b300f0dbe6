"""The sampling pipeline, stage by stage, on one row of next-token logits.

Order (fixed, and the order the page shows): repetition penalty → presence/frequency penalties →
constraint mask → temperature → top-k → top-p → min-p. Each stage matches its reference:
repetition penalty, temperature, top-k, top-p and min-p as transformers' logits processors do
it, presence/frequency penalties as OpenAI defines them (over the completion so far).
An excluded token's logit becomes -inf; the first stage that excluded it is recorded.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine.params import SamplingParams
from engine.types import InputError

STAGES = (
    "repetition_penalty",
    "presence_frequency",
    "constraint",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
)
GREEDY_STAGE = "temperature"  # temperature 0 (or greedy) keeps only the argmax


@dataclass(frozen=True)
class PipelineResult:
    """The pipeline on one row of logits (all tensors of shape (vocab,), float32 on CPU).

    logits: the raw logits. scores: after every stage (-inf where excluded).
    p_base: softmax of the raw logits. p_final: the distribution sampled from (0 where excluded).
    removed_by: index into STAGES of the stage that excluded the token, -1 if kept.
    valid: False where the constraint forbids the token.
    """

    logits: torch.Tensor
    scores: torch.Tensor
    p_base: torch.Tensor
    p_final: torch.Tensor
    removed_by: torch.Tensor
    valid: torch.Tensor

    @property
    def kept(self) -> torch.Tensor:
        return self.removed_by < 0


def _exclude(scores: torch.Tensor, removed_by: torch.Tensor, mask: torch.Tensor, stage: str):
    """Set scores to -inf where mask, recording `stage` for tokens not excluded before."""
    newly = mask & (removed_by < 0)
    removed_by.masked_fill_(newly, STAGES.index(stage))
    scores.masked_fill_(mask, -math.inf)


def apply_repetition_penalty(scores: torch.Tensor, context_ids: torch.Tensor, penalty: float):
    """transformers' RepetitionPenaltyLogitsProcessor: every token id in the context is divided
    by the penalty where its logit is positive and multiplied by it where negative."""
    if penalty == 1.0 or context_ids.numel() == 0:
        return scores
    seen = scores.gather(0, context_ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return scores.scatter(0, context_ids, seen)


def apply_presence_frequency(
    scores: torch.Tensor, completion_ids: torch.Tensor, presence: float, frequency: float
):
    """OpenAI's definition: logit[j] -= count[j] * frequency + (count[j] > 0) * presence,
    counting the tokens generated so far (not the prompt)."""
    if (presence == 0 and frequency == 0) or completion_ids.numel() == 0:
        return scores
    counts = torch.bincount(completion_ids, minlength=scores.shape[0]).to(scores.dtype)
    return scores - counts * frequency - (counts > 0).to(scores.dtype) * presence


def _top_k_mask(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    """transformers' TopKLogitsWarper: remove scores below the k-th largest (ties are kept)."""
    top_k = min(top_k, scores.shape[0])
    threshold = torch.topk(scores, top_k).values[-1]
    return scores < threshold


def _top_p_mask(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """transformers' TopPLogitsWarper: keep the smallest set of most likely tokens whose mass
    reaches top_p (always at least one).

    Like transformers, this sums the softmax of the ascending sorted scores in float32, so
    boundary tokens in a flat tail fall on the same side. The sorted values come from numpy's
    SIMD sort (~30× faster than torch.sort over a 262k vocabulary). The removed tokens are a
    prefix of that order, so they are every score up to the boundary value, unless the boundary
    splits tied scores: then which of them go depends on torch.sort's order, and that is used.
    Tokens already excluded add exactly 0 to the sum, so when an earlier stage (top-k, a
    constraint) left few tokens, only those are sorted."""
    alive = torch.nonzero(scores > -math.inf).flatten()
    if alive.numel() * 2 <= scores.shape[0]:
        remove = torch.ones_like(scores, dtype=torch.bool)
        remove[alive] = _top_p_mask_sorted(scores[alive], top_p)
        return remove
    sorted_scores = torch.from_numpy(np.sort(scores.numpy()))
    n_removed = int(_top_p_removed_sorted(sorted_scores, top_p).sum())
    if n_removed == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    boundary = sorted_scores[n_removed - 1]
    if sorted_scores[n_removed] == boundary:
        return _top_p_mask_sorted(scores, top_p)
    return scores <= boundary


def _top_p_removed_sorted(sorted_scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which of these ascending scores top-p removes, summed as transformers sums them."""
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[-1] = False
    return remove_sorted


def _top_p_mask_sorted(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """The top-p mask through torch.sort, exactly as transformers computes it."""
    sorted_scores, order = torch.sort(scores, descending=False)
    remove_sorted = _top_p_removed_sorted(sorted_scores, top_p)
    return remove_sorted.scatter(0, order, remove_sorted)


def _min_p_mask(scores: torch.Tensor, min_p: float) -> torch.Tensor:
    """transformers' MinPLogitsWarper: remove tokens less likely than min_p × the top token."""
    probs = scores.softmax(dim=-1)
    remove = probs < min_p * probs.max()
    remove[probs.argmax()] = False
    return remove


def run_pipeline(
    logits: torch.Tensor,
    params: SamplingParams,
    *,
    context_ids: torch.Tensor | None = None,
    completion_ids: torch.Tensor | None = None,
    valid_mask: torch.Tensor | None = None,
    on_stage: Callable[[str, torch.Tensor], None] | None = None,
) -> PipelineResult:
    """Run every stage on `logits` (vocab,).

    context_ids: every token the model has read (prompt + completion), for the repetition penalty.
    completion_ids: the generated tokens only, for presence/frequency penalties.
    valid_mask: bool (vocab,), False where a constraint forbids the token; None = no constraint.
    on_stage: called with each stage's name and the scores after it, in STAGES order (a stage
    that is off passes the scores on unchanged), for showing the pipeline stage by stage.
    """
    seen = on_stage or (lambda _stage, _scores: None)
    (vocab,) = logits.shape
    logits = logits.detach().to(device="cpu", dtype=torch.float32)
    empty = torch.zeros(0, dtype=torch.long)
    context_ids = (context_ids if context_ids is not None else empty).to("cpu", torch.long)
    completion_ids = (completion_ids if completion_ids is not None else empty).to("cpu", torch.long)
    removed_by = torch.full((vocab,), -1, dtype=torch.int8)

    scores = apply_repetition_penalty(logits.clone(), context_ids, params.repetition_penalty)
    seen("repetition_penalty", scores)
    scores = apply_presence_frequency(
        scores, completion_ids, params.presence_penalty, params.frequency_penalty
    )
    seen("presence_frequency", scores)
    valid = torch.ones(vocab, dtype=torch.bool) if valid_mask is None else valid_mask.cpu()
    if valid_mask is not None:
        if not valid.any():
            raise InputError("The constraint allows no token at this point", field="constraint")
        _exclude(scores, removed_by, ~valid, "constraint")
    seen("constraint", scores)
    if params.is_greedy:
        not_argmax = torch.ones(vocab, dtype=torch.bool)
        not_argmax[scores.argmax()] = False
        _exclude(scores, removed_by, not_argmax, GREEDY_STAGE)
        for stage in STAGES[STAGES.index(GREEDY_STAGE) :]:
            seen(stage, scores)
    else:
        scores = scores / params.temperature
        seen("temperature", scores)
        if params.top_k > 0:
            _exclude(scores, removed_by, _top_k_mask(scores, params.top_k), "top_k")
        seen("top_k", scores)
        if params.top_p < 1.0:
            _exclude(scores, removed_by, _top_p_mask(scores, params.top_p), "top_p")
        seen("top_p", scores)
        if params.min_p > 0.0:
            _exclude(scores, removed_by, _min_p_mask(scores, params.min_p), "min_p")
        seen("min_p", scores)
    return PipelineResult(
        logits=logits,
        scores=scores,
        p_base=logits.softmax(dim=-1),
        p_final=scores.softmax(dim=-1),
        removed_by=removed_by,
        valid=valid,
    )


def draw_seed(seed: int, step: int) -> int:
    """A 63-bit generator seed that depends only on (seed, step): replays agree everywhere."""
    digest = hashlib.sha256(f"tokenlens:{seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def choose(result: PipelineResult, params: SamplingParams, step: int) -> int:
    """The token id to emit: the argmax when greedy, else a draw from p_final.

    The draw is u ~ U[0, 1) from a CPU generator seeded by draw_seed(seed, step), mapped through
    the cumulative p_final of the kept tokens (float64, in token-id order): the same on every
    device and every replay.
    """
    if params.is_greedy:
        return int(result.p_final.argmax())
    generator = torch.Generator(device="cpu").manual_seed(draw_seed(params.seed, step))
    u = torch.rand((), generator=generator, dtype=torch.float64)
    kept_ids = torch.nonzero(result.kept).flatten()
    cumulative = result.p_final[kept_ids].to(torch.float64).cumsum(0)
    index = torch.searchsorted(cumulative, u * cumulative[-1], right=True)
    return int(kept_ids[index.clamp(max=len(kept_ids) - 1)])


def entropy(probs: torch.Tensor) -> float:
    """Shannon entropy in bits, with 0 · log 0 = 0."""
    return float(torch.special.entr(probs).sum(dtype=torch.float64) / math.log(2))
