"""What a step is: the request that advances one branch, each token it appended (with the
distribution it was chosen from) and the result, with why the branch ended. Plain data,
shared by the Stepper (engine.stepping) and its callers."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.constraints import Constraint
from engine.distribution import Distribution
from engine.kvcache import scoped
from engine.params import SamplingParams
from engine.types import GeneratedPiece

MODES = ("sample", "greedy", "force", "turn")
APPENDING_MODES = ("force", "turn")  # modes that append the given force_ids


@dataclass(frozen=True)
class StepRequest:
    """Advance one branch by one step.

    branch: the branch's cache key (any string; e.g. its UUID). parent: the branch it was forked
    from, if any (a hint where its prefix is cached).
    prompt_ids: the tokens the model reads before the completion (chat template applied).
    completion_ids: the tokens generated so far. The sampling step index is len(completion_ids).
    mode: "sample" (a seeded draw from p_final, or the argmax when params are greedy),
      "greedy" (the argmax of p_final), "force" (append force_ids, e.g. a forced text's tokens),
      or "turn" (append force_ids: a user's turn of a conversation, through the chat template,
      recorded with the model's distribution at each of its tokens; the assistant's reply
      starts after it).
    stop: stop sequences; max_new_tokens: the length limit of the assistant's current reply,
      which starts at completion index turn_start (0 until a conversation has a second turn;
      None: the context).
    cache_scope: whose text this is (e.g. "user:7"); cached states are reused within it only.
    """

    branch: str
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...] = ()
    params: SamplingParams = field(default_factory=SamplingParams)
    mode: str = "sample"
    force_ids: tuple[int, ...] = ()
    constraint: Constraint | None = None
    top_n: int = 20
    stop: tuple[str, ...] = ()
    max_new_tokens: int | None = None
    parent: str | None = None
    cache_scope: str = ""
    turn_start: int = 0

    @property
    def context_ids(self) -> tuple[int, ...]:
        return tuple(self.prompt_ids) + tuple(self.completion_ids)

    @property
    def cache_key(self) -> str:
        """The branch's key within its scope (two people's "same" branch are two rows)."""
        return scoped(self.cache_scope, self.branch)

    @property
    def n_new(self) -> int:
        """How many tokens this step appends."""
        return len(self.force_ids) if self.mode in APPENDING_MODES else 1

    @property
    def reply_length(self) -> int:
        """Tokens of the assistant's current reply so far."""
        return len(self.completion_ids) - self.turn_start


@dataclass(frozen=True)
class StepToken:
    """One token appended to a branch, as it was when chosen.

    index: its position in the completion (0-based). how: "sampled", "greedy", "forced" or
    "turn" (a token of a user's turn).
    distribution: the top-N candidates at that step (chosen = this token, with its p_base,
    p_final and rank). elapsed_ms: the wall time of the step (a batched pass is shared).
    """

    index: int
    piece: GeneratedPiece
    how: str
    distribution: Distribution
    elapsed_ms: float

    @property
    def id(self) -> int:
        return self.piece.id

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "piece": self.piece.to_dict(),
            "how": self.how,
            "distribution": self.distribution.to_dict(),
            "elapsed_ms": self.elapsed_ms,
        }


@dataclass(frozen=True)
class StepResult:
    """What one step appended to a branch, and why the branch ended (None: it goes on).
    computed_tokens: how many tokens went through the model for it (1 when the branch's
    prefix was cached; the whole context when it was not), what the step really cost."""

    branch: str
    tokens: tuple[StepToken, ...]
    finish_reason: str | None
    computed_tokens: int = 0

    def to_dict(self) -> dict:
        return {
            "branch": self.branch,
            "tokens": [token.to_dict() for token in self.tokens],
            "finish_reason": self.finish_reason,
        }
