"""The next-token distribution of a prefix, through the sampling pipeline, as typed results."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.constraints import Constraint
from engine.limits import MAX_TOP_N
from engine.loading import LoadedModel
from engine.matching import ConstraintMatcher
from engine.params import SamplingParams
from engine.sampling import STAGES, PipelineResult, choose, entropy, run_pipeline
from engine.tokenization import token_text, tokenize
from engine.types import InputError


@dataclass(frozen=True)
class Candidate:
    """One candidate next token.

    p_base: softmax of the raw logits. p_final: probability in the distribution sampled from
    (0 when excluded). rank: 1-based rank by raw logit. removed_by: the pipeline stage that
    excluded it (None when kept). valid: False when the constraint forbids it.
    """

    id: int
    text: str
    special: bool
    partial: bool
    logit: float
    p_base: float
    p_final: float
    kept: bool
    valid: bool
    rank: int
    removed_by: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Distribution:
    """The top-N candidates (kept ones first by p_final, then excluded ones by p_base) and
    summary numbers over the whole vocabulary (entropies in bits)."""

    candidates: tuple[Candidate, ...]
    entropy: float
    entropy_base: float
    kept_mass: float
    n_kept: int
    vocab_size: int
    chosen: Candidate | None

    def to_dict(self) -> dict:
        return {
            "tokens": [candidate.to_dict() for candidate in self.candidates],
            "entropy": self.entropy,
            "entropy_base": self.entropy_base,
            "kept_mass": self.kept_mass,
            "n_kept": self.n_kept,
            "vocab_size": self.vocab_size,
            "chosen": self.chosen.to_dict() if self.chosen else None,
        }


def _ranks(logits: torch.Tensor, token_ids: list[int]) -> dict[int, int]:
    """1-based rank by raw logit (1 + how many logits are strictly larger) of each token.

    Tokens among the top len(token_ids) logits are ranked from one topk; only the others
    (rare: excluded tokens shown by p_base) pay a pass over the vocabulary."""
    top = torch.topk(logits, min(len(token_ids) + 1, logits.shape[0])).values  # descending
    threshold = top[-1]
    ranks = {}
    for token_id in token_ids:
        logit = logits[token_id]
        if logit > threshold:
            ranks[token_id] = int((top > logit).sum()) + 1
        else:
            ranks[token_id] = int((logits > logit).sum()) + 1
    return ranks


def _candidate(tokenizer, result: PipelineResult, token_id: int, rank: int) -> Candidate:
    text, special, partial = token_text(tokenizer, token_id)
    stage = int(result.removed_by[token_id])
    return Candidate(
        id=token_id,
        text=text,
        special=special,
        partial=partial,
        logit=float(result.logits[token_id]),
        p_base=float(result.p_base[token_id]),
        p_final=float(result.p_final[token_id]),
        kept=stage < 0,
        valid=bool(result.valid[token_id]),
        rank=rank,
        removed_by=None if stage < 0 else STAGES[stage],
    )


def summarize(
    result: PipelineResult, tokenizer, top_n: int = 20, chosen_id: int | None = None
) -> Distribution:
    """The Distribution of a pipeline result: top_n candidates and whole-vocabulary numbers."""
    if not 1 <= top_n <= MAX_TOP_N:
        raise InputError(f"top_n must be between 1 and {MAX_TOP_N}, got {top_n}", field="top_n")
    kept = result.kept
    # Kept tokens rank above every excluded one (p ≤ 1 < 2 + p).
    order_key = torch.where(kept, 2 + result.p_final, result.p_base)
    top_ids = torch.topk(order_key, min(top_n, order_key.shape[0])).indices.tolist()
    ranks = _ranks(result.logits, top_ids + ([chosen_id] if chosen_id is not None else []))
    return Distribution(
        candidates=tuple(_candidate(tokenizer, result, i, ranks[i]) for i in top_ids),
        entropy=entropy(result.p_final),
        entropy_base=entropy(result.p_base),
        kept_mass=float(torch.where(kept, result.p_base, 0.0).sum()),
        n_kept=int(kept.sum()),
        vocab_size=int(result.logits.shape[0]),
        chosen=(
            _candidate(tokenizer, result, chosen_id, ranks[chosen_id])
            if chosen_id is not None
            else None
        ),
    )


@torch.inference_mode()
def next_token_logits(loaded: LoadedModel, input_ids: list[int]) -> torch.Tensor:
    """Raw logits (vocab,) for the token after `input_ids`, from one full forward pass."""
    ids = torch.tensor([input_ids], dtype=torch.long, device=loaded.device)
    output = loaded.model(input_ids=ids, logits_to_keep=1, use_cache=False)
    return output.logits[0, -1].float().cpu()


def prompt_ids(
    loaded: LoadedModel, prompt: str, system_prompt: str | None, use_chat_template: bool
) -> list[int]:
    tokens = tokenize(
        loaded.tokenizer,
        prompt,
        model_key=loaded.spec.key,
        context_length=loaded.info.context_length,
        system_prompt=system_prompt,
        use_chat_template=use_chat_template,
    ).tokens
    return [token.id for token in tokens]


def check_token_ids(loaded: LoadedModel, ids: list[int], field: str) -> None:
    vocab = loaded.info.vocab_size
    for token_id in ids:
        if not isinstance(token_id, int) or not 0 <= token_id < vocab:
            raise InputError(
                f"Token id {token_id!r} is outside this model's vocabulary (0–{vocab - 1})",
                field=field,
            )


def next_token_inputs(
    loaded: LoadedModel,
    prompt: str,
    system_prompt: str | None,
    use_chat_template: bool,
    completion_ids: list[int],
    constraint: Constraint | None,
) -> tuple[list[int], torch.Tensor | None]:
    """Every token id the model reads before the next one, and the constraint's mask of the
    tokens allowed next (None without one). Under a constraint, the completion so far must be
    one the constraint allows."""
    check_token_ids(loaded, completion_ids, "completion_ids")
    context = prompt_ids(loaded, prompt, system_prompt, use_chat_template) + completion_ids
    if len(context) >= loaded.info.context_length:
        raise InputError(
            f"The prompt and completion fill the context window "
            f"({loaded.info.context_length:,} tokens)",
            field="completion_ids",
        )
    if constraint is None:
        return context, None
    matcher = ConstraintMatcher(constraint, loaded.tokenizer, loaded.info.vocab_size)
    matcher.consume(completion_ids)
    return context, matcher.allowed_mask()


def distribution_for(
    loaded: LoadedModel,
    prompt: str,
    *,
    params: SamplingParams,
    system_prompt: str | None = None,
    use_chat_template: bool = False,
    completion_ids: list[int] = (),
    top_n: int = 20,
    constraint: Constraint | None = None,
) -> Distribution:
    """The next-token distribution after prompt + completion_ids, and the token the pipeline
    would choose at this step (step index = len(completion_ids)). Under a constraint, the
    completion so far must be one the constraint allows."""
    completion_ids = list(completion_ids)
    context, valid_mask = next_token_inputs(
        loaded, prompt, system_prompt, use_chat_template, completion_ids, constraint
    )
    result = run_pipeline(
        next_token_logits(loaded, context),
        params,
        context_ids=torch.tensor(context),
        completion_ids=torch.tensor(completion_ids, dtype=torch.long),
        valid_mask=valid_mask,
    )
    chosen = choose(result, params, step=len(completion_ids))
    return summarize(result, loaded.tokenizer, top_n, chosen)
