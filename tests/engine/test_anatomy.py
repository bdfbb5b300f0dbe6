"""The sampling anatomy says what the pipeline itself does under each setting."""

import dataclasses
import math

import pytest
import torch

from engine.anatomy import STAGE_LABELS, TEMPERATURES, TOP_KS, TOP_PS, sampling_anatomy
from engine.distribution import distribution_for, next_token_logits, prompt_ids
from engine.params import SamplingParams
from engine.sampling import choose, run_pipeline
from engine.types import InputError

PARAMS = SamplingParams(
    temperature=0.8, top_k=30, top_p=0.9, min_p=0.02, repetition_penalty=1.3, seed=5
)


@pytest.fixture(scope="module")
def prefix(smollm2):
    context = prompt_ids(smollm2, "The cat sat on the mat. The cat", None, False)
    completion = context[-2:]  # pretend the last two were generated: penalties have work
    logits = next_token_logits(smollm2, context)
    return context, completion, logits


def _anatomy(smollm2, prefix, params=PARAMS, **options):
    context, completion, logits = prefix
    return sampling_anatomy(
        logits,
        params,
        smollm2.tokenizer,
        context_ids=torch.tensor(context),
        completion_ids=torch.tensor(completion),
        **options,
    )


def _pipeline(prefix, params):
    context, completion, logits = prefix
    return run_pipeline(
        logits, params, context_ids=torch.tensor(context), completion_ids=torch.tensor(completion)
    )


def test_each_candidate_is_followed_stage_by_stage_to_what_a_step_samples_from(smollm2, prefix):
    anatomy = _anatomy(smollm2, prefix)
    result = _pipeline(prefix, PARAMS)
    assert anatomy.stages == STAGE_LABELS and STAGE_LABELS[0] == "raw"
    for trace in anatomy.traces:
        token_id = trace.token.id
        assert len(trace.probabilities) == len(STAGE_LABELS)
        assert trace.probabilities[0] == pytest.approx(float(result.p_base[token_id]), abs=1e-7)
        assert trace.probabilities[-1] == pytest.approx(float(result.p_final[token_id]), abs=1e-7)
        assert trace.logit == pytest.approx(float(result.logits[token_id]))
        if trace.removed_by is None:
            assert trace.probabilities[-1] > 0
        else:  # zero from the stage that removed it on
            stage = STAGE_LABELS.index(trace.removed_by)
            assert all(p == 0 for p in trace.probabilities[stage:])
            assert trace.probabilities[stage - 1] > 0
    # The repetition penalty moved " sat" (already in the text) at its own stage.
    seen = next(t for t in anatomy.traces if t.token.text.strip() == "sat")
    assert seen.probabilities[1] != pytest.approx(seen.probabilities[0])
    assert {t.removed_by for t in anatomy.traces} & {"top_k", "top_p", "min_p"}


def test_the_sweeps_are_the_pipeline_under_each_value(smollm2, prefix):
    anatomy = _anatomy(smollm2, prefix)
    temperature, top_p, top_k = anatomy.sweeps
    assert temperature.values == TEMPERATURES and top_p.values == TOP_PS and top_k.values == TOP_KS
    at_half = _pipeline(prefix, dataclasses.replace(PARAMS, top_p=0.5))
    index = TOP_PS.index(0.5)
    assert top_p.n_kept[index] == int(at_half.kept.sum())
    kept_mass = float(torch.where(at_half.kept, at_half.p_base, 0.0).sum())
    assert top_p.kept_mass[index] == pytest.approx(kept_mass)
    assert top_k.n_kept[0] == 1 and list(top_k.n_kept[:-1]) == sorted(top_k.n_kept[:-1])
    assert top_k.current == 30 and top_p.current == 0.9
    curve_token, values = anatomy.temperature_curves[0]
    hot = _pipeline(prefix, dataclasses.replace(PARAMS, temperature=1.5))
    assert values[TEMPERATURES.index(1.5)] == pytest.approx(float(hot.p_final[curve_token.id]))
    assert anatomy.current_temperature == 0.8


def test_rules_side_by_side_with_seeded_draws_a_step_would_make(smollm2, prefix):
    anatomy = _anatomy(smollm2, prefix, n_draws=12)
    rules = {rule.name: rule for rule in anatomy.rules}
    assert list(rules) == ["greedy", "temperature", "top_k", "top_p", "min_p", "current"]
    assert rules["greedy"].n_kept == 1 and rules["greedy"].entropy == pytest.approx(0, abs=1e-9)
    assert rules["temperature"].n_kept == prefix[2].shape[0]  # nothing truncated
    assert rules["top_k"].n_kept == 30 and rules["top_k"].params["top_p"] == 1.0
    assert rules["temperature"].entropy > rules["top_p"].entropy
    for rule in anatomy.rules:
        assert sum(count for _token, count in rule.draws) == 12
    # The draws are what students with seeds 5, 6, … would get at this step.
    current = _pipeline(prefix, PARAMS)
    step = len(prefix[1])
    expected = [choose(current, dataclasses.replace(PARAMS, seed=5 + i), step) for i in range(12)]
    drawn = {token.id: count for token, count in rules["current"].draws}
    assert drawn == {i: expected.count(i) for i in set(expected)}


def test_greedy_settings_and_bad_draw_counts(smollm2, prefix):
    anatomy = _anatomy(smollm2, prefix, SamplingParams(temperature=0))
    assert anatomy.current_temperature == 0
    kept = [trace for trace in anatomy.traces if trace.removed_by is None]
    assert len(kept) == 1 and kept[0].probabilities[-1] == pytest.approx(1.0)
    assert all(math.isfinite(p) for sweep in anatomy.sweeps for p in sweep.entropy)
    with pytest.raises(InputError, match="draws"):
        _anatomy(smollm2, prefix, n_draws=0)
    with pytest.raises(InputError, match="seed"):
        _anatomy(smollm2, prefix, SamplingParams(seed=2**63 - 2), n_draws=5)


def test_the_anatomy_agrees_with_the_distribution_a_step_records(smollm2):
    distribution = distribution_for(smollm2, "Hello, my name is", params=PARAMS, top_n=5)
    context = prompt_ids(smollm2, "Hello, my name is", None, False)
    anatomy = sampling_anatomy(
        next_token_logits(smollm2, context),
        PARAMS,
        smollm2.tokenizer,
        context_ids=torch.tensor(context),
        completion_ids=torch.tensor([], dtype=torch.long),
    )
    traces = {trace.token.id: trace for trace in anatomy.traces}
    for candidate in distribution.candidates:
        if candidate.id in traces:
            assert traces[candidate.id].probabilities[-1] == pytest.approx(candidate.p_final)
    assert anatomy.to_dict()["rules"][5]["n_kept"] == distribution.n_kept
