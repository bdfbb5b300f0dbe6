"""Tokenize text the way the model reads it, with the exact bytes of every token.

Byte-level BPE (GPT-2, Llama 3, SmolLM2) spells bytes as printable stand-in characters, and
SentencePiece with byte fallback (Gemma) spells them as <0xNN>; both are mapped back to raw bytes
so a character split over several tokens is shown as its bytes, never as a replacement character.
"""

from __future__ import annotations

import codecs
import json
import re
from functools import lru_cache

from transformers.convert_slow_tokenizer import bytes_to_unicode

from engine.types import GeneratedPiece, InputError, Tokenization, TokenPiece

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_UNICODE_TO_BYTE = {char: byte for byte, char in bytes_to_unicode().items()}


@lru_cache(maxsize=8)
def _decoder_types(tokenizer) -> frozenset[str]:
    """The decoder stages of a fast tokenizer ("ByteLevel", "ByteFallback", "Replace", ...)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return frozenset()
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if "type" in node:
                found.add(node["type"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(backend.to_str()).get("decoder"))
    return frozenset(found)


@lru_cache(maxsize=8)
def _special_ids(tokenizer) -> frozenset[int]:
    ids = set(tokenizer.all_special_ids)
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return frozenset(ids)


def piece_bytes(tokenizer, piece: str, decoders: frozenset[str]) -> bytes:
    """The raw bytes a vocabulary piece stands for."""
    match = _BYTE_FALLBACK.match(piece)
    if match and "ByteFallback" in decoders:
        return bytes([int(match.group(1), 16)])
    if "ByteLevel" in decoders and all(char in _UNICODE_TO_BYTE for char in piece):
        return bytes(_UNICODE_TO_BYTE[char] for char in piece)
    if "Replace" in decoders or "Metaspace" in decoders:
        return piece.replace("\u2581", " ").encode("utf-8")
    return tokenizer.convert_tokens_to_string([piece]).encode("utf-8")


def _escape_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    stray = error.object[error.start : error.end]
    return "".join(f"<0x{byte:02X}>" for byte in stray), error.end


codecs.register_error("tokenlens_bytes", _escape_bytes)


def describe_bytes(raw: bytes) -> tuple[str, bool]:
    """(text, partial): the decoded text, with <0xNN> escapes for bytes of a split character."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="tokenlens_bytes"), True


def render_chat(tokenizer, text: str, system_prompt: str | None) -> str:
    """The text the model really reads in chat mode: system + user turn + generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(
            "This model has no chat template (it is a base model); turn the chat template off",
            field="use_chat_template",
        )
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def tokenize(
    tokenizer,
    text: str,
    *,
    model_key: str,
    context_length: int,
    system_prompt: str | None = None,
    use_chat_template: bool = False,
) -> Tokenization:
    """Cut `text` into the model's tokens (with the chat template when asked).

    Raises InputError for empty text, a missing chat template, or more tokens than the
    model's context window (`context_length`).
    """
    if not text or not text.strip():
        raise InputError("Type some text to tokenize", field="text")
    source = render_chat(tokenizer, text, system_prompt) if use_chat_template else text
    encoded = tokenizer(
        source, return_offsets_mapping=True, add_special_tokens=not use_chat_template
    )
    ids: list[int] = encoded["input_ids"]
    if context_length and len(ids) > context_length:
        raise InputError(
            f"The text is {len(ids):,} tokens long; this model reads at most "
            f"{context_length:,} tokens",
            field="text",
        )
    decoders = _decoder_types(tokenizer)
    specials = _special_ids(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    tokens = []
    for token_id, piece, (start, end) in zip(ids, pieces, encoded["offset_mapping"], strict=True):
        if token_id in specials:
            tokens.append(TokenPiece(token_id, piece, start, end, True, False, ()))
            continue
        raw = piece_bytes(tokenizer, piece, decoders)
        decoded, partial = describe_bytes(raw)
        tokens.append(TokenPiece(token_id, decoded, start, end, False, partial, tuple(raw)))
    return Tokenization(model_key, source, use_chat_template, tuple(tokens))


def read_sequence(
    tokenizer,
    text: str,
    *,
    model_key: str,
    context_length: int,
    system_prompt: str | None = None,
    use_chat_template: bool = False,
    completion_ids=(),
) -> Tokenization:
    """A prompt as tokenize() cuts it, followed by generated tokens (`completion_ids`) as they
    are, never re-tokenized: what an exploration's branch really fed the model.

    A generated token's start/end cover the characters it completes in source_text (the
    prompt's text plus the generated text); a token holding only the first bytes of a split
    character covers nothing (start == end).
    """
    prompt = tokenize(
        tokenizer,
        text,
        model_key=model_key,
        context_length=0,
        system_prompt=system_prompt,
        use_chat_template=use_chat_template,
    )
    vocab = len(tokenizer)
    for token_id in completion_ids:
        if not isinstance(token_id, int) or not 0 <= token_id < vocab:
            raise InputError(
                f"Token id {token_id!r} is outside this model's vocabulary (0–{vocab - 1})",
                field="completion_ids",
            )
    total = prompt.count + len(completion_ids)
    if context_length and total > context_length:
        raise InputError(
            f"The text is {total:,} tokens long; this model reads at most "
            f"{context_length:,} tokens",
            field="text",
        )
    joiner = TextJoiner(tokenizer)
    tokens = list(prompt.tokens)
    for token_id in completion_ids:
        before = len(joiner.text)
        joiner.add(token_id)
        shown, special, partial = token_text(tokenizer, token_id)
        start, end = len(prompt.source_text) + before, len(prompt.source_text) + len(joiner.text)
        raw = token_bytes(tokenizer, token_id) or b""
        tokens.append(TokenPiece(int(token_id), shown, start, end, special, partial, tuple(raw)))
    return Tokenization(
        model_key, prompt.source_text + joiner.text, use_chat_template, tuple(tokens)
    )


def read_model_sequence(loaded, text: str, **sequence_options) -> Tokenization:
    """read_sequence with a loaded model's tokenizer, key and context window."""
    return read_sequence(
        loaded.tokenizer,
        text,
        model_key=loaded.spec.key,
        context_length=loaded.info.context_length,
        **sequence_options,
    )


@lru_cache(maxsize=1 << 16)
def token_text(tokenizer, token_id: int) -> tuple[str, bool, bool]:
    """(text, special, partial) of one vocabulary entry, decoded as tokenize() shows it."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if int(token_id) in _special_ids(tokenizer):
        return piece, True, False
    text, partial = describe_bytes(piece_bytes(tokenizer, piece, _decoder_types(tokenizer)))
    return text, False, partial


def token_bytes(tokenizer, token_id: int) -> bytes | None:
    """The raw bytes of a vocabulary entry; None for a special token."""
    if int(token_id) in _special_ids(tokenizer):
        return None
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    return piece_bytes(tokenizer, piece, _decoder_types(tokenizer))


class TextJoiner:
    """Turns generated tokens into text one token at a time, holding back the bytes of a
    character split across tokens until it is complete (never a replacement character)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="tokenlens_bytes")
        self._pending_tokens = 0  # tokens whose bytes sit in the decoder's buffer
        self.text = ""  # every complete character so far (special tokens excluded)

    def add(self, token_id: int) -> GeneratedPiece:
        raw = token_bytes(self.tokenizer, token_id)
        if raw is None:
            self._decoder.reset()
            self._pending_tokens = 0
            name = self.tokenizer.convert_ids_to_tokens(int(token_id))
            return GeneratedPiece(int(token_id), name, True, False, 0, ())
        waiting_before = self._pending_tokens
        complete = self._decoder.decode(raw)
        still_pending = self._decoder.getstate()[0]
        self.text += complete
        joins = waiting_before if complete and waiting_before else 0
        # Once something decoded, what still waits can only be this token's own last bytes.
        own_pending = still_pending if complete else raw
        self._pending_tokens = (1 if complete else waiting_before + 1) if still_pending else 0
        escapes = "".join(f"<0x{byte:02X}>" for byte in own_pending)
        return GeneratedPiece(
            int(token_id), complete + escapes, False, bool(still_pending), joins, tuple(raw)
        )


def join_generated(tokenizer, token_ids) -> tuple[GeneratedPiece, ...]:
    """The pieces of a generated token sequence (see TextJoiner)."""
    joiner = TextJoiner(tokenizer)
    return tuple(joiner.add(token_id) for token_id in token_ids)
