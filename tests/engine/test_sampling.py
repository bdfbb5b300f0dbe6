"""The sampling pipeline stage by stage, against transformers' own logits processors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from engine.distribution import next_token_logits, prompt_ids
from engine.params import MIN_TEMPERATURE, PRESETS, SamplingParams
from engine.sampling import (
    STAGES,
    _top_p_mask,
    _top_p_mask_sorted,
    apply_presence_frequency,
    choose,
    draw_seed,
    run_pipeline,
)
from engine.types import InputError

GRID = [
    SamplingParams(),
    SamplingParams(temperature=0.7, top_k=50),
    SamplingParams(temperature=1.3, top_p=0.9),
    SamplingParams(temperature=0.8, min_p=0.05),
    SamplingParams(repetition_penalty=1.3, temperature=0.9, top_k=40, top_p=0.95, min_p=0.02),
    SamplingParams(repetition_penalty=0.8, temperature=1.5, top_p=0.5),
    SamplingParams(temperature=0.2, top_k=5, top_p=0.99),
]


def transformers_p_final(logits, context_ids, params):
    """What transformers' own processors give for the same logits, in the same order."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    if params.min_p:
        processors.append(MinPLogitsWarper(params.min_p))
    scores = processors(context_ids[None], logits[None].clone())
    return scores.softmax(-1)[0]


@pytest.fixture(scope="module")
def real_logits(any_packaged_model):
    prompt = "The quick brown fox jumps over the lazy dog. The quick brown"
    ids = prompt_ids(any_packaged_model, prompt, None, False)
    return next_token_logits(any_packaged_model, ids), torch.tensor(ids)


@pytest.mark.parametrize("params", GRID, ids=lambda p: f"T{p.temperature}-k{p.top_k}-p{p.top_p}")
def test_p_final_equals_transformers_processors(real_logits, params):
    logits, context = real_logits
    ours = run_pipeline(logits, params, context_ids=context)
    expected = transformers_p_final(logits, context, params)
    assert torch.allclose(ours.p_final, expected, atol=1e-5)
    assert torch.equal(ours.kept, expected > 0)


def test_p_base_is_the_softmax_of_raw_logits(real_logits):
    logits, context = real_logits
    result = run_pipeline(logits, SamplingParams(repetition_penalty=2.0), context_ids=context)
    assert torch.allclose(result.p_base, logits.softmax(-1))


def test_presence_and_frequency_follow_openai():
    logits = torch.zeros(5)
    completion = torch.tensor([1, 1, 1, 3])
    adjusted = apply_presence_frequency(logits, completion, presence=0.5, frequency=0.25)
    assert adjusted.tolist() == [0.0, -(3 * 0.25 + 0.5), 0.0, -(0.25 + 0.5), 0.0]


def test_each_exclusion_names_the_first_stage_that_removed_it():
    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    valid = torch.tensor([True, True, True, True, True, False])
    result = run_pipeline(logits, SamplingParams(top_k=3, top_p=0.5), valid_mask=valid)
    names = [None if s < 0 else STAGES[s] for s in result.removed_by.tolist()]
    assert names == [None, "top_p", "top_p", "top_k", "top_k", "constraint"]
    assert result.valid.tolist() == valid.tolist()


def test_a_constraint_that_allows_nothing_is_an_error():
    with pytest.raises(InputError, match="allows no token"):
        run_pipeline(torch.zeros(4), SamplingParams(), valid_mask=torch.zeros(4, dtype=torch.bool))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", -0.1),
        ("temperature", math.nan),
        ("temperature", 1e-40),
        ("temperature", 0.005),
        ("top_k", -1),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("min_p", 1.2),
        ("repetition_penalty", 0.0),
        ("presence_penalty", 3.0),
        ("frequency_penalty", -2.5),
        ("seed", -1),
    ],
)
def test_it_rejects_out_of_range_parameters_naming_them(name, value):
    with pytest.raises(InputError, match=name) as caught:
        SamplingParams(**{name: value})
    assert caught.value.field == name


def test_the_smallest_temperature_allowed_still_picks_the_argmax_with_finite_probabilities():
    logits = torch.tensor([30.0, 29.9, -5.0, 12.0] * 1000)
    logits[393] = 30.5
    result = run_pipeline(logits, SamplingParams(temperature=MIN_TEMPERATURE))
    assert torch.isfinite(result.p_final).all()
    assert int(result.p_final.argmax()) == 393
    assert choose(result, SamplingParams(temperature=MIN_TEMPERATURE), 0) == 393


def test_unknown_parameters_are_rejected():
    with pytest.raises(InputError, match="'tempurature'"):
        SamplingParams.from_dict({"tempurature": 1.0})


def test_presets_are_valid_and_greedy_is_greedy():
    assert PRESETS["greedy"].is_greedy
    assert {"greedy", "balanced", "reliable", "creative"} == set(PRESETS)


def test_the_draw_depends_only_on_seed_and_step(real_logits):
    logits, context = real_logits
    params = SamplingParams(temperature=1.5, seed=7)
    result = run_pipeline(logits, params, context_ids=context)
    picks = [choose(result, params, step) for step in range(40)]
    assert picks == [choose(result, params, step) for step in range(40)]
    assert len(set(picks)) > 1, "a hot distribution gives different tokens at different steps"
    assert draw_seed(7, 3) != draw_seed(7, 4) != draw_seed(8, 3)


logit_vectors = st.integers(min_value=2, max_value=300).flatmap(
    lambda n: st.lists(
        st.floats(min_value=-20, max_value=20, width=32, allow_nan=False, allow_subnormal=False),
        min_size=n,
        max_size=n,
        unique=True,
    )
)


@settings(max_examples=60, deadline=None)
@given(
    values=logit_vectors,
    temperature=st.floats(min_value=0.05, max_value=5),
    top_k=st.integers(min_value=0, max_value=50),
    top_p=st.floats(min_value=0.01, max_value=1.0),
    min_p=st.floats(min_value=0.0, max_value=0.5),
    seed=st.integers(min_value=0, max_value=2**40),
)
def test_p_final_is_a_distribution_over_the_kept_tokens(
    values, temperature, top_k, top_p, min_p, seed
):
    params = SamplingParams(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, seed=seed
    )
    result = run_pipeline(torch.tensor(values), params)
    assert result.kept.any()
    assert math.isclose(float(result.p_final[result.kept].sum()), 1.0, abs_tol=1e-5)
    assert float(result.p_final[~result.kept].abs().sum()) == 0.0
    assert result.kept[choose(result, params, step=seed % 100)]


@settings(max_examples=60, deadline=None)
@given(values=logit_vectors, top_k=st.integers(min_value=1, max_value=400))
def test_top_k_keeps_k(values, top_k):
    result = run_pipeline(torch.tensor(values), SamplingParams(top_k=top_k))
    assert int(result.kept.sum()) == min(top_k, len(values))


@settings(max_examples=60, deadline=None)
@given(values=logit_vectors, top_p=st.floats(min_value=0.01, max_value=0.99))
def test_top_p_keeps_the_smallest_set_reaching_p(values, top_p):
    result = run_pipeline(torch.tensor(values), SamplingParams(top_p=top_p))
    kept_probs = result.p_base[result.kept]
    mass = float(kept_probs.sum())
    assert mass >= top_p - 1e-5
    assert mass - float(kept_probs.min()) < top_p + 1e-5
    excluded = result.p_base[~result.kept]
    if excluded.numel():
        assert float(kept_probs.min()) >= float(excluded.max())


@settings(max_examples=60, deadline=None)
@given(values=logit_vectors)
def test_greedy_keeps_only_the_argmax(values):
    logits = torch.tensor(values)
    for params in (SamplingParams(temperature=0), SamplingParams(greedy=True, temperature=2)):
        result = run_pipeline(logits, params)
        assert result.kept.nonzero().flatten().tolist() == [int(logits.argmax())]
        assert choose(result, params, step=3) == int(logits.argmax())


tied_logit_vectors = st.lists(
    st.sampled_from([-math.inf, -3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0, 4.0]),
    min_size=2,
    max_size=300,
).filter(lambda values: max(values) > -math.inf)


@settings(max_examples=200, deadline=None)
@given(
    values=st.one_of(logit_vectors, tied_logit_vectors),
    top_p=st.floats(min_value=0.01, max_value=0.99),
)
def test_fast_top_p_removes_exactly_what_the_full_sort_removes(values, top_p):
    """numpy's sort finds the boundary; torch.sort (as transformers does it) is the reference,
    ties and already-excluded tokens included."""
    scores = torch.tensor(values, dtype=torch.float32)
    assert torch.equal(_top_p_mask(scores, top_p), _top_p_mask_sorted(scores, top_p))
