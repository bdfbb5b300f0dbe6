"""Checking a logit-lens request: the position, top_k, token ids and the tokens to contrast,
each an InputError naming its field."""

from __future__ import annotations

from engine.limits import MAX_CHOSEN, MAX_TOP_K
from engine.tokenization import token_text
from engine.types import InputError


def _is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_position(position, n_tokens: int) -> int:
    """The 0-based position (None: the last; negative counts from the end)."""
    if position is None:
        return n_tokens - 1
    if not _is_whole_number(position) or not -n_tokens <= position < n_tokens:
        raise InputError(
            f"Position {position!r} is outside this sequence of {n_tokens:,} tokens "
            f"(0 to {n_tokens - 1}, or -1 to -{n_tokens} from the end)",
            field="position",
        )
    return position % n_tokens


def check_top_k(top_k) -> int:
    if not _is_whole_number(top_k) or not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"top_k must be a whole number from 1 to {MAX_TOP_K}", field="top_k")
    return top_k


def check_ids(values, vocab: int, field_name: str) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) > MAX_CHOSEN:
        raise InputError(f"Choose at most {MAX_CHOSEN} tokens", field=field_name)
    for value in values:
        if not _is_whole_number(value) or not 0 <= value < vocab:
            raise InputError(
                f"Token id {value!r} is outside this model's vocabulary (0–{vocab - 1})",
                field=field_name,
            )
    return tuple(dict.fromkeys(values))


def resolve_token(tokenizer, token, vocab: int, field_name: str = "contrast"):
    """(id, note) for a token given as an id or as text: a text is encoded without special
    tokens and must give at least one token; when it gives several, the first is used and
    note says so (otherwise note is None)."""
    if not isinstance(token, str):
        return check_ids([token], vocab, field_name)[0], None
    ids = tokenizer.encode(token, add_special_tokens=False) if token else []
    if not ids:
        raise InputError("Give a token id or a non-empty text to compare", field=field_name)
    if len(ids) == 1:
        return ids[0], None
    pieces = " + ".join(repr(token_text(tokenizer, token_id)[0]) for token_id in ids)
    first = token_text(tokenizer, ids[0])[0]
    return ids[0], f"{token!r} is {len(ids)} tokens ({pieces}); comparing its first, {first!r}"
