"""What an attribution returns: the scores of each token and the integrated-gradients path."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.limits import ATTRIBUTION_METHODS as METHODS
from engine.precision import Bfloat16Check
from engine.types import TokenPiece

SIGNED_METHODS = frozenset({"input_x_gradient", "integrated_gradients"})
OBJECTIVE = "log_probability"


@dataclass(frozen=True)
class PathSummary:
    """Integrated gradients' bookkeeping: the baseline holds baseline_id everywhere but at
    kept_positions (the input's own tokens, which score 0); f is the target's log-probability
    at the explained position; sum(scores) = f_input - f_baseline + convergence_delta.

    n_steps: the path points whose gradients were taken; adaptive: the path was refined
    (segments of it, each with its own delta; delta_bound = the sum of their |delta|s, which
    |convergence_delta| never exceeds) until |convergence_delta| and the largest segment's
    |delta| were both ≤ tolerance (nats), or its budget ran out; a fixed path is one segment
    and has no tolerance."""

    n_steps: int
    baseline_id: int
    baseline_text: str
    kept_positions: tuple[int, ...]
    f_input: float
    f_baseline: float
    convergence_delta: float
    adaptive: bool = False
    segments: int = 1
    delta_bound: float = 0.0
    tolerance: float | None = None
    largest_segment_delta: float = 0.0

    @property
    def converged(self) -> bool | None:
        if self.tolerance is None:
            return None
        return (
            abs(self.convergence_delta) <= self.tolerance
            and self.largest_segment_delta <= self.tolerance
        )

    def to_dict(self) -> dict:
        return {
            "n_steps": self.n_steps,
            "baseline": {
                "id": self.baseline_id,
                "text": self.baseline_text,
                "kept_positions": list(self.kept_positions),
            },
            "f_input": self.f_input,
            "f_baseline": self.f_baseline,
            "f_difference": self.f_input - self.f_baseline,
            "convergence_delta": self.convergence_delta,
            "adaptive": self.adaptive,
            "segments": self.segments,
            "delta_bound": self.delta_bound,
            "largest_segment_delta": self.largest_segment_delta,
            "tolerance": self.tolerance,
            "converged": self.converged,
        }


@dataclass(frozen=True)
class Attribution:
    """Why the model gives `target_id` after token `position`.

    tokens: the tokens the model read (0..position); scores[i]: token i's score by `method`
      (attention and rollout: weights ≥ 0; saliency: gradient norms ≥ 0; input_x_gradient and
      integrated_gradients: signed contributions to the target's log-probability).
    target_probability: the target's probability at `position` under the model.
    device: where it was computed ("cpu" when a CUDA attempt failed and was retried there).
    path: integrated gradients' summary, None for the other methods.
    bfloat16: the check that offered bfloat16 when the scores were computed in it, else None.
    """

    method: str
    position: int
    tokens: tuple[TokenPiece, ...]
    scores: tuple[float, ...]
    target_id: int
    target_text: str
    target_probability: float
    device: str
    path: PathSummary | None = None
    bfloat16: Bfloat16Check | None = None

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "explanation": METHODS[self.method],
            "objective": OBJECTIVE,
            "signed": self.method in SIGNED_METHODS,
            "position": self.position,
            "n_tokens": len(self.tokens),
            "tokens": [{"id": t.id, "text": t.text, "special": t.special} for t in self.tokens],
            "scores": list(self.scores),
            "target": {
                "id": self.target_id,
                "text": self.target_text,
                "probability": self.target_probability,
            },
            "device": self.device,
            "precision": "bfloat16" if self.bfloat16 else "float32",
            "bfloat16": self.bfloat16.to_dict() if self.bfloat16 else None,
            "integrated_gradients": self.path.to_dict() if self.path else None,
        }


@dataclass(frozen=True)
class Question:
    """What to explain: the model reads ids (tokens 0..p) and target_id is scored as the token
    after them. special[i]: token i is a control token (kept in the integrated-gradients
    baseline). n_steps: the integrated-gradients path's length, None to refine it until it
    converges (0 for the other methods). precision: "float32" or "bfloat16" (autocast)."""

    ids: tuple[int, ...]
    special: tuple[bool, ...]
    target_id: int
    method: str
    n_steps: int | None
    precision: str = "float32"


@dataclass(frozen=True)
class Scores:
    """What one method computes on one device: (tokens,) scores, the target's log-probability."""

    scores: torch.Tensor
    log_probability: float
    path: PathSummary | None = None
