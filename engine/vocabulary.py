"""Look a word up in a model's vocabulary: how it is cut with and without a leading space
(most tokenizers have a different entry for " word" than for "word"), and for a number, the
vocabulary entry with that id."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.tokenization import token_text
from engine.types import InputError

_TOKEN_ID = re.compile(r"^#?(\d{1,12})$")


@dataclass(frozen=True)
class VocabularyEntry:
    """One vocabulary entry: text as tokenize() shows it, piece as the vocabulary spells it."""

    id: int
    text: str
    piece: str
    special: bool
    partial: bool

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "text": self.text,
            "piece": self.piece,
            "special": self.special,
            "partial": self.partial,
        }


@dataclass(frozen=True)
class WordForm:
    """A spelling of the word (bare or with a leading space) and the tokens it becomes."""

    label: str
    text: str
    tokens: tuple[VocabularyEntry, ...]

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "text": self.text,
            "ids": [token.id for token in self.tokens],
            "tokens": [token.to_dict() for token in self.tokens],
            "single_token": len(self.tokens) == 1,
        }


@dataclass(frozen=True)
class WordLookup:
    """forms: the word without and with a leading space. by_id: for input that reads as a
    token id ("1234" or "#1234"), that vocabulary entry, or None when there is no such id."""

    word: str
    vocab_size: int
    forms: tuple[WordForm, ...]
    by_id: VocabularyEntry | None

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "vocab_size": self.vocab_size,
            "forms": [form.to_dict() for form in self.forms],
            "by_id": self.by_id.to_dict() if self.by_id else None,
        }


def vocabulary_entry(tokenizer, token_id: int) -> VocabularyEntry:
    text, special, partial = token_text(tokenizer, token_id)
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    return VocabularyEntry(int(token_id), text, piece, special, partial)


def word_form(tokenizer, label: str, text: str) -> WordForm:
    """SentencePiece's "▁" for a space is the tokenizer's business: " word" is encoded as is."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return WordForm(label, text, tuple(vocabulary_entry(tokenizer, i) for i in ids))


def lookup_word(tokenizer, word: str) -> WordLookup:
    """How `word` is tokenized bare and after a space, and the entry whose id it spells."""
    if not word or not word.strip():
        raise InputError("Type a word to look up", field="word")
    bare = word.lstrip(" ")
    forms = (
        word_form(tokenizer, "without a leading space", bare),
        word_form(tokenizer, "with a leading space", " " + bare),
    )
    match = _TOKEN_ID.match(word.strip())
    by_id = None
    if match and int(match.group(1)) < len(tokenizer):
        by_id = vocabulary_entry(tokenizer, int(match.group(1)))
    return WordLookup(word, len(tokenizer), forms, by_id)
