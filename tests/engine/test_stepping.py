"""Stepping with per-branch key/value caches, batched steps, modes and stopping, on both
packaged models: every cached or batched result must equal a full forward pass."""

from __future__ import annotations

import warnings

import pytest
import torch

from engine.distribution import distribution_for, next_token_logits, prompt_ids
from engine.forward import CachedForward, Row
from engine.kvcache import PrefixCache
from engine.params import SamplingParams
from engine.stepping import Stepper, StepRequest
from engine.types import InputError

LOGIT_TOLERANCE = 2e-4
PROMPTS = [
    "The history of the printing press",
    "Bonjour! Je m'appelle",
    "def fibonacci(n):",
    "Once upon a time, in a land far away, there lived a",
]
SAMPLING = SamplingParams(temperature=0.9, top_p=0.95, seed=7)


@pytest.fixture(scope="module")
def stepper(any_packaged_model):
    return Stepper(any_packaged_model, cache_budget_bytes=1 << 30)


def ids_of(loaded, text: str) -> tuple[int, ...]:
    return tuple(prompt_ids(loaded, text, None, False))


def greedy_continuation(stepper, prompt, n, branch):
    request = StepRequest(branch, prompt, params=SamplingParams(temperature=0), max_new_tokens=n)
    return [token.id for result in stepper.generate(request) for token in result.tokens]


def test_cached_steps_equal_a_full_forward_pass_including_undo_and_fork(
    any_packaged_model, stepper
):
    loaded = any_packaged_model
    prompt = ids_of(loaded, PROMPTS[0])
    completion = greedy_continuation(stepper, prompt, 12, "main")
    forward = CachedForward(loaded.model, loaded.device, stepper.cache)
    cases = [
        ("main", prompt + tuple(completion)),  # the branch's own cache, grown step by step
        ("main", prompt + tuple(completion[:5])),  # undo seven tokens: cropped
        ("fork", prompt + tuple(completion[:3]) + (completion[7],)),  # forked at index 3
    ]
    for branch, ids in cases:
        cached = forward.logits(Row(branch, torch.tensor(ids), parent="main"))[0]
        full = next_token_logits(loaded, list(ids))
        assert torch.allclose(cached, full, atol=LOGIT_TOLERANCE), branch
    assert stepper.cache.stats().hits >= 3


def test_a_fork_reuses_the_cached_prefix(any_packaged_model):
    loaded = any_packaged_model
    cache = PrefixCache(1 << 30)
    forward = CachedForward(loaded.model, loaded.device, cache)
    ids = torch.tensor(ids_of(loaded, PROMPTS[3]))
    forward.logits(Row("parent", ids))
    length, _ = cache.lookup("child", torch.cat([ids[:6], torch.tensor([42])]), 6, "parent")
    assert length == 6


def test_stepping_uses_no_deprecated_transformers_argument(any_packaged_model):
    """Fresh, cached and batched passes call the model with the arguments transformers keeps
    (its `past_key_values` goes in 5.40): no deprecation warning."""
    loaded = any_packaged_model
    stepper = Stepper(loaded, 1 << 30)
    first = StepRequest("row", ids_of(loaded, PROMPTS[0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        token = stepper.step(first).tokens[0].id
        stepper.step(StepRequest("row", first.prompt_ids, completion_ids=(token,)))
        stepper.step_many([first, StepRequest("other", ids_of(loaded, PROMPTS[1]))])
    deprecations = [str(w.message) for w in caught if "deprecated" in str(w.message).lower()]
    assert deprecations == []


def test_batched_steps_equal_single_steps(any_packaged_model):
    loaded = any_packaged_model
    params = [
        SamplingParams(temperature=0.7, top_k=40, seed=1),
        SamplingParams(temperature=1.2, top_p=0.9, seed=2),
        SamplingParams(temperature=0, repetition_penalty=1.3),
        SamplingParams(min_p=0.05, presence_penalty=0.5, frequency_penalty=0.3, seed=3),
    ]
    requests = [
        StepRequest(f"row{i}", ids_of(loaded, prompt), params=p, top_n=10)
        for i, (prompt, p) in enumerate(zip(PROMPTS, params, strict=True))
    ]
    batched_stepper = Stepper(loaded, 1 << 30)
    single_stepper = Stepper(loaded, 1 << 30)
    for _ in range(3):  # fresh rows read together, then cached rows of different lengths
        batched = batched_stepper.step_many(requests)
        single = [single_stepper.step(request) for request in requests]
        for one, other in zip(batched, single, strict=True):
            mine, theirs = one.tokens[0], other.tokens[0]
            assert mine.id == theirs.id
            for a, b in zip(
                mine.distribution.candidates, theirs.distribution.candidates, strict=True
            ):
                assert a.id == b.id
                assert abs(a.p_final - b.p_final) < 1e-5
                assert abs(a.p_base - b.p_base) < 1e-5
        requests = [
            StepRequest(**{**r.__dict__, "completion_ids": r.completion_ids + (t.tokens[0].id,)})
            for r, t in zip(requests, batched, strict=True)
        ]


def test_batched_logits_equal_a_full_forward_past_the_sliding_window(gemma):
    """Gemma 3 attends within 512 tokens on most layers: padding must not shift that window."""
    story = "The keeper climbed the stairs and wrote the weather in his book. " * 60
    long_ids = ids_of(gemma, story)[:530]
    short_ids = ids_of(gemma, PROMPTS[1])
    forward = CachedForward(gemma.model, gemma.device, PrefixCache(1 << 30))
    rows = [Row("long", torch.tensor(long_ids)), Row("short", torch.tensor(short_ids))]
    for _ in range(2):  # read together, then from the caches
        batched = forward.last_logits(rows)
        for row, logits in zip(rows, batched, strict=True):
            full = next_token_logits(gemma, row.ids.tolist())
            assert torch.allclose(logits, full, atol=LOGIT_TOLERANCE)
        rows = [Row(r.branch, torch.cat([r.ids, torch.tensor([r.ids[-3]])])) for r in rows]


def test_a_step_records_what_the_stateless_distribution_gives(any_packaged_model, stepper):
    loaded = any_packaged_model
    prompt = ids_of(loaded, PROMPTS[2])
    completion = tuple(greedy_continuation(stepper, prompt, 4, "record"))
    result = stepper.step(StepRequest("record", prompt, completion, params=SAMPLING))
    expected = distribution_for(loaded, PROMPTS[2], params=SAMPLING, completion_ids=completion)
    token = result.tokens[0]
    assert token.id == expected.chosen.id
    assert token.index == len(completion)
    assert token.how == "sampled"
    assert [c.id for c in token.distribution.candidates] == [c.id for c in expected.candidates]
    assert abs(token.distribution.chosen.p_final - expected.chosen.p_final) < 1e-5


def test_seeded_sampling_replays_the_same_tokens(any_packaged_model):
    loaded = any_packaged_model
    prompt = ids_of(loaded, PROMPTS[3])
    runs = []
    for branch in ("first", "replay"):
        request = StepRequest(branch, prompt, params=SAMPLING, max_new_tokens=8)
        results = Stepper(loaded, 1 << 30).generate(request)
        runs.append([token.id for result in results for token in result.tokens])
    assert runs[0] == runs[1]


def test_greedy_generation_matches_transformers_generate(any_packaged_model, stepper):
    loaded = any_packaged_model
    prompt = ids_of(loaded, PROMPTS[0])
    ours = greedy_continuation(stepper, prompt, 10, "vs-generate")
    with torch.inference_mode():
        theirs = loaded.model.generate(
            torch.tensor([prompt]), max_new_tokens=10, min_new_tokens=10, do_sample=False
        )[0, len(prompt) :].tolist()
    assert ours == theirs


def test_greedy_mode_takes_the_argmax_of_p_final(any_packaged_model, stepper):
    prompt = ids_of(any_packaged_model, PROMPTS[1])
    result = stepper.step(StepRequest("greedy-mode", prompt, params=SAMPLING, mode="greedy"))
    token = result.tokens[0]
    assert token.how == "greedy"
    best = max(token.distribution.candidates, key=lambda c: c.p_final)
    assert token.id == best.id


def test_forcing_text_appends_each_token_with_its_distribution(any_packaged_model, stepper):
    loaded = any_packaged_model
    prompt = ids_of(loaded, PROMPTS[0])
    forced = tuple(loaded.tokenizer.encode(" began in Mainz", add_special_tokens=False))
    assert len(forced) > 1
    result = stepper.step(StepRequest("forced", prompt, mode="force", force_ids=forced))
    assert [token.id for token in result.tokens] == list(forced)
    assert all(token.how == "forced" for token in result.tokens)
    for index, token in enumerate(result.tokens):
        assert token.index == index
        assert token.distribution.chosen.id == forced[index]
        full = next_token_logits(loaded, list(prompt + forced[:index])).softmax(-1)
        assert abs(token.distribution.chosen.p_base - float(full[forced[index]])) < 1e-5


def test_forcing_a_token_id_appends_exactly_it(any_packaged_model, stepper):
    prompt = ids_of(any_packaged_model, PROMPTS[1])
    result = stepper.step(StepRequest("force-id", prompt, mode="force", force_ids=(1234,)))
    assert [token.id for token in result.tokens] == [1234]
    assert result.tokens[0].distribution.chosen.id == 1234
    assert result.tokens[0].distribution.chosen.rank >= 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "jump"}, "mode must be one of"),
        ({"mode": "force"}, "Forcing needs"),
        ({"mode": "force", "force_ids": (10**9,)}, "outside this model's vocabulary"),
        ({"completion_ids": (-1,)}, "outside this model's vocabulary"),
        ({"top_n": 0}, "top_n"),
        ({"stop": ("",)}, "stop sequences"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_bad_requests_are_rejected_with_the_field_named(smollm2, changes, message):
    stepper = Stepper(smollm2, 1 << 20)
    request = StepRequest(**{"branch": "b", "prompt_ids": (1, 2, 3), **changes})
    with pytest.raises(InputError, match=message):
        stepper.step(request)


def test_a_forced_text_longer_than_the_room_left_is_refused_before_any_pass(smollm2):
    stepper = Stepper(smollm2, 1 << 28)
    prompt = ids_of(smollm2, PROMPTS[0])
    forced = tuple(smollm2.tokenizer.encode(" hello" * 40, add_special_tokens=False))
    request = StepRequest(
        "room", prompt, completion_ids=(11, 12), mode="force", force_ids=forced, max_new_tokens=16
    )
    with pytest.raises(InputError, match=r"40 tokens; this branch has room for 14 more") as error:
        stepper.step(request)
    assert error.value.field == "text"
    assert stepper.cache.keys() == []  # refused before the model read anything


def test_a_forced_text_that_would_end_the_branch_midway_is_refused_whole(smollm2):
    stepper = Stepper(smollm2, 1 << 28)
    prompt = ids_of(smollm2, PROMPTS[0])
    eos = next(iter(stepper.eos_ids))
    forced = (1234, eos, 1235, 1236)
    with pytest.raises(InputError, match="would end the branch .end of sequence|eos") as error:
        stepper.step(StepRequest("midway", prompt, mode="force", force_ids=forced))
    assert error.value.field == "text" and "token 2 of 4" in error.value.message


def test_a_step_reports_how_many_tokens_it_ran(smollm2):
    stepper = Stepper(smollm2, 1 << 28)
    prompt = ids_of(smollm2, PROMPTS[3])
    first = stepper.step(StepRequest("cost", prompt))
    assert first.computed_tokens == len(prompt)
    again = stepper.step(StepRequest("cost", prompt, completion_ids=(first.tokens[0].id,)))
    assert again.computed_tokens == 1


def test_end_of_sequence_finishes_the_branch(smollm2):
    stepper = Stepper(smollm2, 1 << 28)
    prompt = ids_of(smollm2, PROMPTS[0])
    eos = next(iter(stepper.eos_ids))
    result = stepper.step(StepRequest("eos", prompt, mode="force", force_ids=(eos,)))
    assert result.finish_reason == "eos"


def test_max_new_tokens_and_stop_sequences_finish_generation(any_packaged_model, stepper):
    loaded = any_packaged_model
    prompt = ids_of(loaded, "Count: 1, 2, 3, 4,")
    request = StepRequest("limit", prompt, params=SamplingParams(temperature=0), max_new_tokens=5)
    results = stepper.generate(request)
    assert sum(len(r.tokens) for r in results) == 5
    assert results[-1].finish_reason == "max_tokens"
    stop_request = StepRequest(
        "stop", prompt, params=SamplingParams(temperature=0), max_new_tokens=40, stop=(" 7",)
    )
    results = stepper.generate(stop_request)
    assert results[-1].finish_reason == "stop_sequence"
    ids = [token.id for result in results for token in result.tokens]
    text = loaded.tokenizer.decode(ids)
    assert text.rstrip().endswith("7") or " 7" in text
    assert " 7" not in loaded.tokenizer.decode(ids[:-1])


def test_a_stop_sequence_already_in_the_completion_does_not_stop_it_again(smollm2):
    stepper = Stepper(smollm2, 1 << 28)
    prompt = ids_of(smollm2, "Count: 1, 2, 3,")
    before = tuple(smollm2.tokenizer.encode(" 4, 5,", add_special_tokens=False))
    request = StepRequest(
        "again", prompt, before, params=SamplingParams(temperature=0), stop=(" 4",)
    )
    assert stepper.step(request).finish_reason is None


def test_the_context_window_finishes_the_branch(tiny_model_dir):
    from engine.loading import load, spec_for

    loaded = load(spec_for(str(tiny_model_dir)), tiny_model_dir.parent, torch.device("cpu"))
    loaded.info = type(loaded.info)(**{**loaded.info.__dict__, "context_length": 8})
    stepper = Stepper(loaded, 1 << 24)
    request = StepRequest("full", (1, 2, 3, 4, 5, 6, 7), params=SamplingParams(temperature=0))
    assert stepper.step(request).finish_reason == "context_full"
    with pytest.raises(InputError, match="context window"):
        stepper.step(StepRequest("full", (1, 2, 3, 4, 5, 6, 7, 8)))
