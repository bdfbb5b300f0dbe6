"""Following a completion under a constraint (llguidance): the mask of allowed next tokens."""

from __future__ import annotations

from functools import lru_cache

import torch

from engine.constraints import SPEC_FIELD, Constraint, grammar_of, readable_error
from engine.types import InputError


@lru_cache(maxsize=4)
def guidance_tokenizer(tokenizer, vocab_size: int):
    """llguidance's view of a Hugging Face tokenizer (≈0.5 s for SmolLM2, ≈5 s for Gemma:
    built once per tokenizer)."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)


class ConstraintMatcher:
    """Follows one completion under a constraint and gives the mask of allowed next tokens."""

    def __init__(self, constraint: Constraint, tokenizer, vocab_size: int):
        from llguidance import LLMatcher

        self.constraint = constraint
        self.vocab_size = vocab_size
        grammar = grammar_of(constraint)
        lltokenizer = guidance_tokenizer(tokenizer, vocab_size)
        is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, lltokenizer)
        if is_error:
            raise InputError(readable_error(constraint.type, messages[0]), field=SPEC_FIELD)
        self._matcher = LLMatcher(lltokenizer, grammar, log_level=0)
        if self._matcher.is_error():
            raise InputError(readable_error(constraint.type, self._matcher.get_error()), SPEC_FIELD)
        self.consumed: list[int] = []

    def consume(self, token_ids: list[int], field: str = "completion_ids") -> None:
        """Advance over tokens already chosen; InputError (state unchanged for that token) if
        the constraint forbids one."""
        for token_id in token_ids:
            if self._matcher.validate_tokens([int(token_id)]) != 1:
                raise InputError(
                    f"Token {token_id} is not allowed by the constraint at this point", field
                )
            self._matcher.consume_token(int(token_id))
            self.consumed.append(int(token_id))

    def rollback(self, n_tokens: int) -> None:
        if n_tokens and self._matcher.rollback(n_tokens):
            del self.consumed[-n_tokens:]

    @property
    def is_stopped(self) -> bool:
        """Nothing but end-of-sequence can follow."""
        return self._matcher.is_stopped()

    def allowed_mask(self) -> torch.Tensor:
        """(vocab,) bool: True where the next token may be chosen."""
        packed = torch.frombuffer(bytearray(self._matcher.compute_bitmask()), dtype=torch.uint8)
        # Bit k of byte b stands for token 8·b + k (little-endian 32-bit words).
        bits = (packed.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1  # (bytes, 8)
        allowed = bits.flatten().bool()
        if allowed.shape[0] >= self.vocab_size:
            return allowed[: self.vocab_size]
        return torch.cat([allowed, torch.zeros(self.vocab_size - allowed.shape[0], dtype=bool)])
