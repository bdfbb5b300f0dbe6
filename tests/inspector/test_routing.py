"""Routing model work to Celery queues: one per model, one per worker, the worker chosen by
rendezvous hashing over the live workers that serve the model."""

from __future__ import annotations

import pytest

from inspector.compute import dispatch, routing
from inspector.compute import heartbeat as worker_heartbeat
from inspector.errors import ServiceError

AFFINITIES = [f"exploration-{index}" for index in range(300)]


def test_an_exploration_stays_on_one_worker_and_explorations_spread_over_all():
    workers = ["a:1", "b:2", "c:3"]
    chosen = {key: routing.choose_worker(workers, key) for key in AFFINITIES}
    assert chosen == {key: routing.choose_worker(list(reversed(workers)), key) for key in chosen}
    shares = {worker: list(chosen.values()).count(worker) / len(chosen) for worker in workers}
    assert all(0.2 < share < 0.47 for share in shares.values()), shares


def test_when_a_worker_dies_only_its_explorations_move():
    workers = ["a:1", "b:2", "c:3"]
    before = {key: routing.choose_worker(workers, key) for key in AFFINITIES}
    after = {key: routing.choose_worker(["a:1", "c:3"], key) for key in AFFINITIES}
    moved = {key for key in AFFINITIES if before[key] != after[key]}
    assert moved == {key for key in AFFINITIES if before[key] == "b:2"}
    assert moved  # and they went somewhere alive
    assert {after[key] for key in moved} <= {"a:1", "c:3"}


def test_the_router_sends_branch_work_to_a_worker_and_other_work_to_the_model(monkeypatch):
    live = {"a:1": ["smol"], "b:2": ["smol", "gemma"], "c:3": ["gemma"]}
    monkeypatch.setattr(worker_heartbeat, "live_workers", lambda: live)
    step = routing.route("branch_step", {"model": "smol", "affinity": "exploration-7"})
    queue = routing.route_task("tokenlens.compute", [], {"route": step}, {})["queue"]
    expected = routing.choose_worker(["a:1", "b:2"], "exploration-7")
    assert queue == routing.WORKER_QUEUE.format(worker=expected)
    heads = routing.route("heads", {"model": "gemma", "text": "Hello"})
    assert routing.route_task("tokenlens.compute", [], {"route": heads}, {}) == {
        "queue": "tokenlens.model.gemma"
    }
    # Attention keeps the text's layer inputs, so a layer switch goes where the first went.
    attention = routing.route("attention", {"model": "gemma", "text": "Hello"})
    queue = routing.route_task("tokenlens.compute", [], {"route": attention}, {})["queue"]
    expected = routing.choose_worker(["b:2", "c:3"], attention["affinity"])
    assert queue == routing.WORKER_QUEUE.format(worker=expected)
    assert routing.route_task("tokenlens.compute", [], {}, {}) is None


def test_a_preview_of_the_same_prompt_goes_to_the_same_worker():
    first = routing.route("distribution", {"model": "smol", "prompt": "Once upon a time"})
    again = routing.route(
        "distribution", {"model": "smol", "prompt": "Once upon a time", "completion_ids": [5]}
    )
    other = routing.route("distribution", {"model": "smol", "prompt": "Bonjour"})
    assert first["affinity"] == again["affinity"] != other["affinity"]


def test_no_live_worker_of_the_model_is_a_503_that_says_how_to_start_one(settings, monkeypatch):
    settings.TOKENLENS_TASKS_IN_PROCESS = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(worker_heartbeat, "live_workers", lambda: {"a:1": ["gemma-3-270m"]})
    with pytest.raises(ServiceError) as refused:
        dispatch.require_worker("smollm2-135m-instruct")
    assert refused.value.status == 503 and refused.value.field == "model"
    assert "make worker MODELS=smollm2-135m-instruct" in refused.value.message
    assert "gemma-3-270m" in refused.value.message
    dispatch.require_worker("gemma-3-270m")  # served: no error


def test_a_worker_consumes_its_models_queues_and_its_own(settings, db):  # added models: db
    settings.TOKENLENS_WORKER_MODELS = ["gemma-3-270m"]
    own = routing.WORKER_QUEUE.format(worker=worker_heartbeat.worker_name())
    assert routing.queues_of_this_worker() == ["tokenlens.model.gemma-3-270m", own]
    settings.TOKENLENS_WORKER_MODELS = []
    assert "tokenlens.model.smollm2-135m-instruct" in routing.queues_of_this_worker()
