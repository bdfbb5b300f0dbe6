"""What the logit lens returns: each depth's reading, the tokens followed through the depths,
and a contrast of two tokens (frozen dataclasses with to_dict())."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.types import TokenPiece

METHOD = (
    "The residual stream at `position` after each decoder layer (depth 0: the embeddings "
    "entering layer 0), each through the model's own final norm and unembedding (lm_head), "
    "then final logit softcapping when the model's config sets it; softmax over the whole "
    "vocabulary. The last row is the model's real next-token distribution."
)


@dataclass(frozen=True)
class LensToken:
    """One vocabulary entry in a row's top-k: its probability and logit at that depth."""

    id: int
    text: str
    special: bool
    probability: float
    logit: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LensRow:
    """The distribution read at one depth.

    depth: how many decoder layers the vector has been through (0: the embeddings).
    layer: the index of the decoder layer whose output it is (None at depth 0).
    entropy: of the whole distribution, in bits. top: the top-k tokens, most probable first.
    """

    depth: int
    layer: int | None
    label: str
    entropy: float
    top: tuple[LensToken, ...]

    def to_dict(self) -> dict:
        return {
            "depth": self.depth,
            "layer": self.layer,
            "label": self.label,
            "entropy": self.entropy,
            "top": [token.to_dict() for token in self.top],
        }


@dataclass(frozen=True)
class TokenTrace:
    """One chosen token followed through every depth (index = depth).

    reasons: why it is shown: "next_token" (the token that follows the position in the
    sequence), "final_top" (the last layer's top-1), "asked" (in the request's chosen_ids).
    ranks: 1-based, 1 + how many tokens have a strictly larger logit at that depth.
    """

    id: int
    text: str
    special: bool
    reasons: tuple[str, ...]
    probabilities: tuple[float, ...]
    ranks: tuple[int, ...]
    logits: tuple[float, ...]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "special": self.special,
            "reasons": list(self.reasons),
            "probabilities": list(self.probabilities),
            "ranks": list(self.ranks),
            "logits": list(self.logits),
        }


@dataclass(frozen=True)
class LayerLogits:
    """The lens's raw material (kept in memory, never sent): what contrast() reads.

    logits: (depths, vocab) float32 on CPU, after final norm, lm_head and softcapping.
    log_normalizer: (depths,) logsumexp of each row, so p = exp(logit - log_normalizer).
    entropy: (depths,) of each row's softmax, in bits.
    usable_vocab: ids below it have both a logit and a tokenizer entry.
    """

    tokenizer: object
    labels: tuple[str, ...]
    logits: torch.Tensor
    log_normalizer: torch.Tensor
    entropy: torch.Tensor
    usable_vocab: int

    def probabilities(self, token_id: int) -> torch.Tensor:
        return (self.logits[:, token_id] - self.log_normalizer).exp()  # (depths,)

    def ranks(self, token_id: int) -> torch.Tensor:
        return (self.logits > self.logits[:, token_id : token_id + 1]).sum(-1) + 1  # (depths,)


@dataclass(frozen=True)
class ContrastToken:
    """A token of a contrast and what the request gave for it (an id or a text)."""

    id: int
    text: str
    special: bool
    given: int | str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Contrast:
    """Token a against token b at every depth (index = depth).

    logit_diff[d]: logit_a − logit_b (softmax-invariant: the log of p_a / p_b).
    favours[d]: "a", "b" or "tie" (equal logits). decided_at: the shallowest depth from which
    every deeper row favours what the last row favours (None when the last row is a tie).
    note: set when a text spans several tokens and only its first one is compared.
    """

    a: ContrastToken
    b: ContrastToken
    labels: tuple[str, ...]
    logits_a: tuple[float, ...]
    logits_b: tuple[float, ...]
    p_a: tuple[float, ...]
    p_b: tuple[float, ...]
    note: str | None

    @property
    def logit_diff(self) -> tuple[float, ...]:
        return tuple(a - b for a, b in zip(self.logits_a, self.logits_b, strict=True))

    @property
    def favours(self) -> tuple[str, ...]:
        return tuple("a" if diff > 0 else "b" if diff < 0 else "tie" for diff in self.logit_diff)

    @property
    def decided_at(self) -> int | None:
        favours = self.favours
        if favours[-1] == "tie":
            return None
        depth = len(favours) - 1
        while depth > 0 and favours[depth - 1] == favours[-1]:
            depth -= 1
        return depth

    def to_dict(self) -> dict:
        favours, diffs = self.favours, self.logit_diff
        rows = [
            {
                "depth": depth,
                "label": label,
                "logit_a": self.logits_a[depth],
                "logit_b": self.logits_b[depth],
                "logit_diff": diffs[depth],
                "p_a": self.p_a[depth],
                "p_b": self.p_b[depth],
                "favours": favours[depth],
            }
            for depth, label in enumerate(self.labels)
        ]
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "note": self.note,
            "rows": rows,
            "favour_a": [depth for depth, favour in enumerate(favours) if favour == "a"],
            "favour_b": [depth for depth, favour in enumerate(favours) if favour == "b"],
            "final_favours": favours[-1],
            "decided_at": self.decided_at,
        }


@dataclass(frozen=True)
class LogitLens:
    """The logit lens at one position of a sequence of `tokens`.

    rows[d]: the distribution read after d decoder layers (rows[0]: the embeddings; the last
    row is the model's real next-token distribution). chosen: tokens followed through every
    depth. next_token: the token that follows `position` in the sequence (None at the end).
    cached_tokens: how many leading tokens' key/value states came from the cache.
    """

    tokens: tuple[TokenPiece, ...]
    position: int
    top_k: int
    vocab_size: int
    softcapping: float | None
    rows: tuple[LensRow, ...]
    chosen: tuple[TokenTrace, ...]
    contrast: Contrast | None
    cached_tokens: int
    readout: LayerLogits = field(repr=False, compare=False)

    @property
    def next_token(self) -> TokenPiece | None:
        after = self.position + 1
        return self.tokens[after] if after < len(self.tokens) else None

    def to_dict(self) -> dict:
        return {
            "tokens": [token.to_dict() for token in self.tokens],
            "n_tokens": len(self.tokens),
            "position": self.position,
            "token": self.tokens[self.position].to_dict(),
            "next_token": self.next_token.to_dict() if self.next_token else None,
            "top_k": self.top_k,
            "vocab_size": self.vocab_size,
            "softcapping": self.softcapping,
            "method": METHOD,
            "rows": [row.to_dict() for row in self.rows],
            "chosen": [trace.to_dict() for trace in self.chosen],
            "contrast": self.contrast.to_dict() if self.contrast else None,
            "cached_tokens": self.cached_tokens,
        }
