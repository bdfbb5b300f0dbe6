"""Vocabulary lookup: a word's tokens bare and after a space, and the entry a number names."""

import pytest

from engine.tokenization import token_text
from engine.types import InputError
from engine.vocabulary import lookup_word

pytestmark = pytest.mark.model


def test_a_word_is_cut_as_the_tokenizer_cuts_it(any_packaged_model):
    tokenizer = any_packaged_model.tokenizer
    bare, spaced = lookup_word(tokenizer, "hello").forms
    assert bare.text == "hello" and spaced.text == " hello"
    for form in (bare, spaced):
        ids = tokenizer.encode(form.text, add_special_tokens=False)
        assert [token.id for token in form.tokens] == ids
        assert [token.text for token in form.tokens] == [token_text(tokenizer, i)[0] for i in ids]
    assert spaced.to_dict()["single_token"] and spaced.tokens[0].text == " hello"


def test_a_leading_space_typed_by_the_reader_is_the_spaced_form(smollm2):
    lookup = lookup_word(smollm2.tokenizer, " hello")
    assert [form.text for form in lookup.forms] == ["hello", " hello"]
    assert lookup.word == " hello"


def test_a_long_word_is_several_tokens(smollm2):
    bare, _spaced = lookup_word(smollm2.tokenizer, "unbelievably").forms
    assert len(bare.tokens) > 1 and not bare.to_dict()["single_token"]


@pytest.mark.parametrize("word", ["1234", "#1234", " 1234 "])
def test_a_number_names_a_vocabulary_entry(any_packaged_model, word):
    tokenizer = any_packaged_model.tokenizer
    entry = lookup_word(tokenizer, word).by_id
    assert entry.id == 1234
    assert entry.text == token_text(tokenizer, 1234)[0]
    assert entry.piece == tokenizer.convert_ids_to_tokens(1234)


def test_a_number_past_the_vocabulary_names_nothing(smollm2):
    assert lookup_word(smollm2.tokenizer, "99999999").by_id is None
    assert lookup_word(smollm2.tokenizer, "hello").by_id is None


@pytest.mark.parametrize("word", ["", "   ", "\n"])
def test_an_empty_word_names_the_field(smollm2, word):
    with pytest.raises(InputError) as caught:
        lookup_word(smollm2.tokenizer, word)
    assert caught.value.field == "word"
