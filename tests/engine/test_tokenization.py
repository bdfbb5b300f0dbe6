"""Tokenization: pieces, bytes, character offsets, chat templates and special tokens."""

import re

import pytest

from engine.tokenization import describe_bytes, join_generated, tokenize
from engine.types import InputError

SAMPLES = [
    "Hello world",
    "héllo 😀\n\tx  y",
    "日本語のテキスト and code: def f(x):\n    return x**2",
    "  leading spaces, trailing\n\n",
]


def _tokenize(loaded, text, **kwargs):
    return tokenize(
        loaded.tokenizer,
        text,
        model_key=loaded.spec.key,
        context_length=loaded.info.context_length,
        **kwargs,
    )


@pytest.mark.parametrize("text", SAMPLES)
def test_the_bytes_of_the_tokens_are_exactly_the_text(any_packaged_model, text):
    result = _tokenize(any_packaged_model, text)
    assert [t.id for t in result.tokens] == any_packaged_model.tokenizer(text).input_ids
    joined = b"".join(bytes(t.byte_values) for t in result.tokens if not t.special)
    assert joined == text.encode("utf-8")
    assert result.count == len(result.tokens)


@pytest.mark.parametrize("text", SAMPLES)
def test_no_token_is_shown_as_a_replacement_character(any_packaged_model, text):
    for token in _tokenize(any_packaged_model, text).tokens:
        assert "\ufffd" not in token.text


def test_a_split_character_is_shown_as_its_bytes(smollm2):
    tokens = _tokenize(smollm2, "I 😀").tokens
    partial = [t for t in tokens if t.partial]
    assert partial, "SmolLM2 splits this emoji over byte tokens"
    assert all("<0x" in t.text for t in partial)
    assert b"".join(bytes(t.byte_values) for t in partial).endswith("😀".encode()[-1:])


def test_offsets_point_into_the_source_text(any_packaged_model):
    text = "The cat sat on the mat."
    result = _tokenize(any_packaged_model, text)
    words = [text[t.start : t.end] for t in result.tokens if not t.special]
    assert "".join(words) == text


def test_special_tokens_are_marked(gemma):
    first = _tokenize(gemma, "Hi").tokens[0]
    assert first.special and first.text == "<bos>" and first.byte_values == ()


def test_the_chat_template_wraps_system_and_user_turns(smollm2):
    result = _tokenize(smollm2, "Hi there", system_prompt="Be brief", use_chat_template=True)
    specials = [t.text for t in result.tokens if t.special]
    assert specials.count("<|im_start|>") == 3
    assert "Be brief" in result.source_text and result.source_text.endswith("assistant\n")
    assert result.used_chat_template


def test_a_base_model_has_no_chat_template(gemma):
    with pytest.raises(InputError) as caught:
        _tokenize(gemma, "Hi", use_chat_template=True)
    assert caught.value.field == "use_chat_template"


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_it_rejects_empty_text(smollm2, text):
    with pytest.raises(InputError) as caught:
        _tokenize(smollm2, text)
    assert caught.value.field == "text"


def test_it_rejects_text_longer_than_the_context(smollm2):
    with pytest.raises(InputError, match="8,192 tokens") as caught:
        _tokenize(smollm2, "word " * 9000)
    assert caught.value.field == "text"


@pytest.mark.parametrize(
    ("raw", "text", "partial"),
    [(b"abc", "abc", False), ("é".encode(), "é", False), (b" \xf0\x9f", " <0xF0><0x9F>", True)],
)
def test_describe_bytes(raw, text, partial):
    assert describe_bytes(raw) == (text, partial)


SPLIT_TEXTS = ["Prix: 5€ 🎉 naïve 漢字", "🦜🦜 والسلام", "emoji 👩‍👩‍👧 family"]


@pytest.mark.parametrize("text", SPLIT_TEXTS)
def test_generated_tokens_join_split_characters_once_complete(any_packaged_model, text):
    tokenizer = any_packaged_model.tokenizer
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = join_generated(tokenizer, ids)
    assert all("\ufffd" not in piece.text for piece in pieces)
    complete = "".join(re.sub(r"(<0x[0-9A-F]{2}>)+$", "", piece.text) for piece in pieces)
    assert complete == text
    for index, piece in enumerate(pieces):
        if piece.joins:
            assert all(earlier.pending for earlier in pieces[index - piece.joins : index])
    assert not pieces[-1].pending


def test_a_pending_token_shows_its_bytes_until_the_character_completes(smollm2):
    tokenizer = smollm2.tokenizer
    ids = tokenizer.encode(" 🎉", add_special_tokens=False)
    pieces = join_generated(tokenizer, ids)
    assert len(pieces) > 1, "SmolLM2 splits this emoji over several tokens"
    assert pieces[0].pending and "<0xF0>" in pieces[0].text
    assert pieces[-1].text.endswith("🎉") and pieces[-1].joins == len(pieces) - 1


def test_a_special_token_in_a_generation_keeps_its_name(smollm2):
    tokenizer = smollm2.tokenizer
    pieces = join_generated(tokenizer, [*tokenizer.encode("Hi", add_special_tokens=False), 2])
    assert pieces[-1].special and pieces[-1].text == tokenizer.convert_ids_to_tokens(2)
