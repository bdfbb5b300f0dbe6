"""What a step saves: PostgreSQL keeps no NUL in text or jsonb, so a NUL token (byte 0x00 is in
every byte-level vocabulary) is saved as ␀, wherever it sits in the recorded distribution."""

from worker.generation import NUL_SYMBOL, storable


def test_a_nul_anywhere_in_a_distribution_is_saved_as_the_symbol():
    distribution = {
        "tokens": [{"id": 0, "text": "\x00", "bytes": [0]}, {"id": 5, "text": "a\x00b"}],
        "chosen": {"id": 0, "text": "\x00"},
        "key\x00": "x",
    }
    saved = storable(distribution)
    assert saved["tokens"][0] == {"id": 0, "text": NUL_SYMBOL, "bytes": [0]}
    assert saved["tokens"][1]["text"] == f"a{NUL_SYMBOL}b"
    assert saved["chosen"]["text"] == NUL_SYMBOL and saved[f"key{NUL_SYMBOL}"] == "x"
    assert storable("\x00 text") == f"{NUL_SYMBOL} text"


def test_text_that_only_spells_an_escape_is_kept_as_it_is():
    distribution = {"tokens": [{"id": 1, "text": "\\u0000"}], "entropy": 1.5}
    assert storable(distribution) == distribution
