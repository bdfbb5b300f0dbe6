"""The logit lens: its last layer is the model's real next-token distribution, the tokens it
follows are the right ones with ranks that agree with probabilities, contrasts have the sign
they should, a cached prefix changes nothing, and softcapping comes from the config."""

import re
import weakref
from dataclasses import replace

import pytest
import torch

from engine import lens as lens_module
from engine import output as output_module
from engine.distribution import next_token_logits
from engine.forward import CachedForward, Row
from engine.kvcache import PrefixCache
from engine.lens import contrast, logit_lens, output_path_gap
from engine.loading import LoadedModel
from engine.sampling import entropy
from engine.types import EngineError, InputError

TEXT = "The capital of France is Paris. The capital of Germany is Berlin, and the capital of"
MODELS = ["smollm2", "gemma"]
MIDDLE = "middle"  # the position of "is" after "France": the next token is " Paris"

_lenses = {}


def middle(loaded) -> int:
    ids = loaded.tokenizer(TEXT).input_ids
    return ids.index(loaded.tokenizer.encode(" Paris", add_special_tokens=False)[0]) - 1


def _lens(loaded, position=None):
    """logit_lens over TEXT, computed once per (model, position) for the whole module."""
    position = middle(loaded) if position == MIDDLE else position
    key = (loaded.spec.key, position)
    if key not in _lenses:
        _lenses[key] = logit_lens(loaded, TEXT, position=position)
    return _lenses[key]


@pytest.fixture(scope="module", params=MODELS)
def loaded(request):
    return request.getfixturevalue(request.param)


def _ids(lens) -> list[int]:
    return [token.id for token in lens.tokens]


@pytest.mark.model
@pytest.mark.parametrize("position", [None, MIDDLE])
def test_the_last_layer_is_the_models_real_next_token_distribution(loaded, position):
    lens = _lens(loaded, position)
    real = next_token_logits(loaded, _ids(lens)[: lens.position + 1]).softmax(-1)  # (vocab,)
    ours = (lens.readout.logits[-1] - lens.readout.log_normalizer[-1]).exp()
    assert torch.allclose(ours, real, atol=1e-4)
    top = lens.rows[-1].top
    assert [token.id for token in top] == real.topk(len(top)).indices.tolist()
    assert [token.probability for token in top] == pytest.approx(
        real.topk(len(top)).values.tolist(), abs=1e-4
    )
    assert lens.rows[-1].entropy == pytest.approx(entropy(real), abs=1e-3)


@pytest.mark.model
def test_there_is_a_row_for_the_embeddings_and_one_per_layer(loaded):
    lens = _lens(loaded)
    n_layers = loaded.info.n_layers
    assert [row.depth for row in lens.rows] == list(range(n_layers + 1))
    assert [row.layer for row in lens.rows] == [None, *range(n_layers)]
    assert lens.rows[0].label == "embeddings" and lens.rows[-1].label == f"layer {n_layers - 1}"
    for row in lens.rows:
        probabilities = [token.probability for token in row.top]
        assert len(row.top) == 10 and probabilities == sorted(probabilities, reverse=True)
        assert 0 <= row.entropy <= 19  # bits: log2 of Gemma's 262,144 entries is 18


@pytest.mark.model
def test_the_default_chosen_tokens_are_the_next_token_and_the_final_top(loaded):
    lens = _lens(loaded, MIDDLE)
    next_id = _ids(lens)[lens.position + 1]
    assert lens.next_token.text == " Paris"
    reasons = {trace.id: trace.reasons for trace in lens.chosen}
    assert reasons[next_id][0] == "next_token"
    assert "final_top" in reasons[lens.rows[-1].top[0].id]
    last = _lens(loaded)
    assert last.next_token is None
    assert [trace.reasons for trace in last.chosen] == [("final_top",)]


@pytest.mark.model
def test_ranks_agree_with_logits_and_probabilities(loaded):
    lens = _lens(loaded, MIDDLE)
    traces = lens.chosen
    assert all(len(trace.ranks) == len(lens.rows) for trace in traces)
    for depth, row in enumerate(lens.rows):
        for trace in traces:
            logit, rank = trace.logits[depth], trace.ranks[depth]
            higher = sum(token.logit > logit for token in row.top)
            if rank <= len(row.top):
                assert rank == higher + 1 and row.top[rank - 1].id == trace.id
            else:
                assert higher == len(row.top)
        by_rank = sorted(traces, key=lambda trace, depth=depth: trace.ranks[depth])
        probabilities = [trace.probabilities[depth] for trace in by_rank]
        assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.model
def test_asked_tokens_replace_the_defaults(smollm2):
    lens = logit_lens(smollm2, TEXT, position=middle(smollm2), chosen_ids=[11, 11, 5])
    assert [(trace.id, trace.reasons) for trace in lens.chosen] == [
        (11, ("asked",)),
        (5, ("asked",)),
    ]


@pytest.mark.model
def test_a_token_contrasted_with_itself_is_zero_at_every_layer(loaded):
    lens = _lens(loaded, MIDDLE)
    same = contrast(lens, " Paris", _ids(lens)[lens.position + 1])
    assert same.a.id == same.b.id and same.logit_diff == (0.0,) * len(lens.rows)
    assert set(same.favours) == {"tie"} and same.decided_at is None


@pytest.mark.model
def test_contrast_sign_says_which_token_each_layer_favours(loaded):
    lens = _lens(loaded, MIDDLE)
    paris, london = contrast(lens, " Paris", " London"), contrast(lens, " London", " Paris")
    assert paris.logit_diff == tuple(-diff for diff in london.logit_diff)
    assert paris.favours[-1] == "a"  # the model itself prefers Paris after "France is"
    body = paris.to_dict()
    assert body["favour_a"] == [row["depth"] for row in body["rows"] if row["logit_diff"] > 0]
    assert all(favour == "a" for favour in paris.favours[paris.decided_at :])
    last = body["rows"][-1]
    assert last["p_a"] == pytest.approx(lens.chosen[0].probabilities[-1], rel=1e-5)


@pytest.mark.model
def test_a_text_of_several_tokens_is_compared_by_its_first_with_a_note(smollm2):
    lens = _lens(smollm2, MIDDLE)
    result = contrast(lens, " Parisianesque", 42)
    first = smollm2.tokenizer.encode(" Parisianesque", add_special_tokens=False)[0]
    assert result.a.id == first and result.b.id == 42
    assert "comparing its first" in result.note


@pytest.mark.model
def test_the_contrast_can_come_with_the_lens(smollm2):
    pair = [" Paris", " Rome"]
    lens = logit_lens(smollm2, TEXT, position=middle(smollm2), top_k=3, contrast_tokens=pair)
    assert lens.contrast.a.text == " Paris" and lens.contrast.b.text == " Rome"
    assert len(lens.rows[0].top) == 3 and lens.to_dict()["contrast"]["final_favours"] == "a"


@pytest.mark.model
def test_positions_count_from_either_end(smollm2):
    n = len(_lens(smollm2).tokens)
    assert logit_lens(smollm2, TEXT, position=-n, top_k=1).position == 0
    assert _lens(smollm2).position == n - 1


@pytest.mark.model
@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"position": 10_000}, "position", "outside this sequence"),
        ({"position": -10_000}, "position", "outside this sequence"),
        ({"position": True}, "position", "outside"),
        ({"top_k": 0}, "top_k", "1 to 50"),
        ({"top_k": 51}, "top_k", "1 to 50"),
        ({"chosen_ids": [49152]}, "chosen_ids", "outside this model's vocabulary"),
        ({"chosen_ids": [-1]}, "chosen_ids", "outside"),
        ({"contrast_tokens": ["", " Paris"]}, "contrast", "non-empty"),
        ({"contrast_tokens": [" Paris"]}, "contrast", "two tokens"),
        ({"contrast_tokens": [1, 10**9]}, "contrast", "outside"),
    ],
)
def test_bad_requests_name_the_field(smollm2, kwargs, field, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)) as caught:
        logit_lens(smollm2, TEXT, **kwargs)
    assert caught.value.field == field


@pytest.mark.model
def test_a_cached_prefix_gives_the_same_lens(smollm2):
    cache = PrefixCache(1 << 30)
    whole = logit_lens(smollm2, TEXT, kv_cache=cache)
    assert whole.cached_tokens == 0 and len(cache.keys()) == 1
    earlier = logit_lens(smollm2, TEXT, position=middle(smollm2), kv_cache=cache)
    assert earlier.cached_tokens == middle(smollm2) and len(cache.keys()) == 1
    fresh = _lens(smollm2, MIDDLE)
    assert torch.allclose(earlier.readout.logits, fresh.readout.logits, atol=1e-3)
    assert [row.top[0].id for row in earlier.rows] == [row.top[0].id for row in fresh.rows]


@pytest.mark.model
def test_a_branchs_cached_states_serve_the_lens(smollm2):
    cache = PrefixCache(1 << 30)
    ids = _ids(_lens(smollm2))
    CachedForward(smollm2.model, smollm2.device, cache).logits(Row("branch-1", torch.tensor(ids)))
    lens = logit_lens(smollm2, TEXT, kv_cache=cache, cache_branch="branch-1")
    assert lens.cached_tokens == len(ids) - 1
    assert torch.allclose(lens.readout.logits, _lens(smollm2).readout.logits, atol=1e-3)


@pytest.fixture(scope="module")
def softcapped(gemma):
    """A tiny random Gemma 3 whose config caps its final logits at 0.5 (Gemma's tokenizer)."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=gemma.info.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        final_logit_softcapping=0.5,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    info = replace(gemma.info, n_layers=2, hidden_size=16)
    return LoadedModel(gemma.spec, model, gemma.tokenizer, torch.device("cpu"), info)


@pytest.mark.model
def test_softcapping_is_read_from_the_config(softcapped, monkeypatch):
    lens = logit_lens(softcapped, "Hello there, world", top_k=3)
    assert lens.softcapping == 0.5 and lens.readout.logits.abs().max() <= 0.5
    ids = [token.id for token in lens.tokens]
    real = next_token_logits(softcapped, ids).softmax(-1)
    assert torch.allclose(lens.readout.probabilities(lens.rows[-1].top[0].id)[-1], real.max())
    assert output_path_gap(softcapped, ids) < 1e-6
    monkeypatch.setattr(output_module, "softcapping", lambda _model: None)  # a lens that forgot
    assert output_path_gap(softcapped, ids) > 100 * output_module.OUTPUT_PATH_TOLERANCE
    monkeypatch.setattr(lens_module, "_checked_models", weakref.WeakSet())
    with pytest.raises(EngineError, match="cannot reproduce this model's own logits"):
        logit_lens(softcapped, "Hello there, world")


def test_normalizer_and_entropy_equal_their_definitions():
    torch.manual_seed(3)
    logits = torch.cat([torch.randn(3, 5000) * 4, torch.full((1, 5000), -30.0)])
    logits[3, 17] = 40.0  # one row almost certain
    log_normalizer, bits = lens_module.normalizer_and_entropy(logits)
    assert torch.allclose(log_normalizer, logits.logsumexp(-1), atol=1e-5)
    for row, value in zip(logits, bits, strict=True):
        assert float(value) == pytest.approx(entropy(row.softmax(-1)), abs=1e-4)
    assert float(bits[3]) < 1e-6
