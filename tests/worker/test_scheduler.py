"""The model's scheduler against the real model: many people's steps, previews and generations
share batched passes and give what stepping one at a time gives; nobody waits more than two
passes; Stop, pauses, abandoned work and bad requests behave."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from engine.distribution import prompt_ids
from engine.params import SamplingParams
from engine.stepping import Stepper, StepRequest
from engine.types import InputError
from worker.scheduler import Generation, ModelScheduler

PROMPTS = [
    "The history of the printing press",
    "Bonjour! Je m'appelle",
    "def fibonacci(n):",
    "Once upon a time, in a land far away, there lived a",
    "The three primary colours are",
    "In 1969, the first person to walk on the Moon",
]


@pytest.fixture
def scheduler(smollm2):
    return ModelScheduler(Stepper(smollm2, 1 << 30))


def request_for(loaded, index: int, **changes) -> StepRequest:
    prompt = tuple(prompt_ids(loaded, PROMPTS[index % len(PROMPTS)], None, False))
    params = SamplingParams(temperature=0.8, top_p=0.95, seed=index)
    return replace(StepRequest(f"row{index}", prompt, params=params, top_n=10), **changes)


def hold_the_model(scheduler) -> threading.Event:
    """Keep the model's thread busy (an analysis that waits) until the event is set, so that
    what is submitted meanwhile waits together for the next pass."""
    started, release = threading.Event(), threading.Event()
    scheduler.analysis(lambda _yield: started.set() or release.wait(30))
    assert started.wait(30)
    return release


def walk(stepper_step, request: StepRequest, n: int) -> list:
    """n steps of one branch, each from the previous result; the results."""
    results = []
    for _ in range(n):
        result = stepper_step(request)
        results.append(result)
        request = replace(request, completion_ids=request.completion_ids + (result.tokens[0].id,))
    return results


def assert_same_steps(mine, theirs):
    for one, other in zip(mine, theirs, strict=True):
        assert one.tokens[0].id == other.tokens[0].id
        for a, b in zip(
            one.tokens[0].distribution.candidates,
            other.tokens[0].distribution.candidates,
            strict=True,
        ):
            assert a.id == b.id
            assert abs(a.p_final - b.p_final) < 1e-5
            assert abs(a.p_base - b.p_base) < 1e-5


def test_mixed_requests_batched_together_equal_stepping_one_at_a_time(smollm2, scheduler):
    """Six people stepping from their own threads, a preview and a generation: the passes
    hold several rows, and every token and distribution is what one-at-a-time stepping gives."""
    alone = Stepper(smollm2, 1 << 30)
    requests = [request_for(smollm2, i) for i in range(6)]
    expected = [walk(alone.step, request, 5) for request in requests]
    generation_request = request_for(smollm2, 7, max_new_tokens=6, branch="generation")
    expected_generation = [r.tokens[0].id for r in alone.generate(generation_request)]
    preview = request_for(smollm2, 2, branch="preview", completion_ids=(13,))
    expected_preview = alone.step(preview)

    generated = []
    generation = Generation(generation_request, lambda r: generated.append(r.tokens[0].id))
    with ThreadPoolExecutor(len(requests) + 1) as people:
        done = people.submit(scheduler.generate, generation)
        walks = list(people.map(lambda r: walk(scheduler.step, r, 5), requests))
    assert_same_steps([scheduler.step(preview)], [expected_preview])
    for mine, theirs in zip(walks, expected, strict=True):
        assert_same_steps(mine, theirs)
    assert done.result(60) == "max_tokens"
    assert generated == expected_generation
    assert scheduler.stats.largest_batch >= 4
    assert scheduler.stats.rows > scheduler.stats.passes


def test_nobody_waits_more_than_two_passes_while_others_step(smollm2, scheduler):
    """Eight people stepping as fast as answers come, two of them with long prompts: each
    step is answered within two passes of being asked."""
    waits: list[int] = []
    lock = threading.Lock()

    def person(index: int) -> int:
        request = request_for(smollm2, index, branch=f"person{index}")
        if index < 2:
            request = replace(request, prompt_ids=request.prompt_ids * 20)
        for _ in range(6):
            asked_at = scheduler.stats.passes
            result = scheduler.step(request)
            with lock:
                waits.append(scheduler.stats.passes - asked_at)
            request = replace(
                request, completion_ids=request.completion_ids + (result.tokens[0].id,)
            )
        return index

    with ThreadPoolExecutor(8) as people:
        assert sorted(people.map(person, range(8))) == list(range(8))
    assert len(waits) == 48
    assert max(waits) <= 2
    assert scheduler.stats.largest_batch >= 4


def test_stop_ends_a_generation_before_its_next_token(smollm2, scheduler):
    stop = threading.Event()
    tokens = []

    def on_result(result):
        tokens.append(result.tokens[0].id)
        if len(tokens) == 3:
            stop.set()  # pressed after the third token was saved
        return True

    request = request_for(smollm2, 0, max_new_tokens=50)
    assert scheduler.generate(Generation(request, on_result, should_stop=stop.is_set)) == "stopped"
    assert len(tokens) == 3
    assert scheduler.running_generations() == 0


def test_a_generation_pausing_between_tokens_does_not_hold_the_model(smollm2, scheduler):
    """During a generation's pause the model serves other people's steps: many steps are
    answered between two of its tokens."""
    events: list[str] = []
    paused = Generation(
        request_for(smollm2, 0, max_new_tokens=3),
        lambda result: events.append("generated") or True,
        pause_seconds=0.6,
    )
    with ThreadPoolExecutor(1) as generating:
        done = generating.submit(scheduler.generate, paused)
        while not events:
            time.sleep(0.01)
        walk(scheduler.step, request_for(smollm2, 1, branch="other"), 4)
        events.append("stepped 4")
        assert done.result(60) == "max_tokens"
    assert events[:2] == ["generated", "stepped 4"]
    assert events.count("generated") == 3


def test_a_generation_saving_error_ends_it_with_that_error(smollm2, scheduler):
    def refuse(_result):
        raise InputError("The branch changed", field="branch")

    with pytest.raises(InputError, match="branch changed"):
        scheduler.generate(Generation(request_for(smollm2, 0, max_new_tokens=5), refuse))
    assert scheduler.running_generations() == 0


def test_abandoned_steps_are_never_computed(smollm2, scheduler):
    """A step whose asker gave up (its deadline passed while it waited, or it was cancelled)
    is dropped when its pass comes: no row of any pass is spent on it."""
    release = hold_the_model(scheduler)
    expired = scheduler.submit(request_for(smollm2, 0), expires_at=time.time() + 0.05)
    cancelled = scheduler.submit(request_for(smollm2, 1))
    assert cancelled.cancel()
    time.sleep(0.1)
    release.set()
    live = scheduler.step(request_for(smollm2, 2))
    assert expired.cancelled() and cancelled.cancelled()
    assert live.tokens
    assert scheduler.stats.rows == 1


def test_a_wrong_request_fails_alone_in_its_batch(smollm2, scheduler):
    release = hold_the_model(scheduler)
    good = [scheduler.submit(request_for(smollm2, i)) for i in range(3)]
    out_of_vocabulary = request_for(smollm2, 4, mode="force", force_ids=(10**9,))
    bad = scheduler.submit(out_of_vocabulary)
    release.set()
    for future in good:
        assert future.result(60).tokens
    with pytest.raises(InputError) as raised:
        bad.result(60)
    assert raised.value.field == "token_id"
    assert scheduler.stats.largest_batch == 4


def test_two_steps_of_one_branch_never_share_a_pass(smollm2, scheduler):
    release = hold_the_model(scheduler)
    first = scheduler.submit(request_for(smollm2, 0))
    second = scheduler.submit(request_for(smollm2, 0))
    release.set()
    assert first.result(60).tokens[0].id == second.result(60).tokens[0].id
    assert scheduler.stats.passes == 2


def test_an_analysis_lets_waiting_steps_run_between_its_chunks(smollm2, scheduler):
    def analysis(yield_point):
        waiting = scheduler.submit(request_for(smollm2, 0))
        yield_point()  # a chunk boundary: the waiting step takes its pass now
        return waiting.done()

    assert scheduler.analysis(analysis).result(60) is True
