"""Generate-to-end runs only while it holds its lease: queued work that waits is not "dead",
a stale or redelivered message does nothing, a generation that lost its lease stops without
touching the newer one's, and work the asker was told had failed is never applied."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from rest_framework.test import APIClient

from engine.stepping import Stepper
from inspector.compute import leases
from inspector.explorations import services as explorations
from inspector.models import Branch
from inspector.protocol import GENERATING_KEY
from worker.generation import generate_branch
from worker.loaded import scheduler

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.model]
SMOL = "smollm2-135m-instruct"


@pytest.fixture
def in_process_worker(settings):
    """The embedded default's worker thread, for real (not inline)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.TOKENLENS_TASKS_IN_PROCESS = True


def _branch(max_new_tokens=40) -> Branch:
    client = APIClient()
    created = client.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": "Once upon a time", "max_new_tokens": max_new_tokens},
        "json",
    )
    assert created.status_code == 201, created.content
    return Branch.objects.get(pk=created.json()["branches"][0]["id"]), client


def _occupy_model(seconds: float) -> threading.Event:
    """Give the model's thread other work for `seconds` (an analysis that takes that long);
    set when it started."""
    started = threading.Event()

    def busy(_yield_point):
        started.set()
        time.sleep(seconds)

    scheduler(SMOL).analysis(busy)
    started.wait(30)
    return started


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_message_without_the_lease_does_nothing():
    branch, _ = _branch()
    key = GENERATING_KEY.format(branch=branch.pk)
    assert leases.store().acquire(key, "the-current-one", 30)
    params = {"branch": str(branch.pk), "exploration": str(branch.exploration_id)}
    answer = generate_branch({**params, "lease": "a-redelivered-one"}, scheduler)
    assert answer["reason"] == "not_held" and branch.steps.count() == 0
    assert leases.store().holder(key) == "the-current-one"
    leases.store().release(key, "the-current-one")


def test_a_generation_waiting_behind_other_work_is_still_generating(in_process_worker, settings):
    settings.TOKENLENS_LEASE_SECONDS = 1
    branch, _ = _branch(max_new_tokens=3)
    _occupy_model(2.5)
    explorations.start_generation(branch)
    time.sleep(1.8)  # longer than a running generation's lease
    assert explorations.is_generating(branch)
    assert _wait_for(lambda: not explorations.is_generating(branch), 60)
    branch.refresh_from_db()
    assert branch.finish_reason == "max_tokens" and branch.steps.count() == 3


def test_a_generation_that_lost_its_lease_stops_and_leaves_the_new_one_alone(settings, monkeypatch):
    settings.TOKENLENS_LEASE_SECONDS = 1
    original = Stepper.step_each
    monkeypatch.setattr(
        Stepper,
        "step_each",
        lambda self, requests: (time.sleep(0.25), original(self, requests))[1],
    )
    branch, _ = _branch(max_new_tokens=60)
    key = GENERATING_KEY.format(branch=branch.pk)
    assert leases.store().acquire(key, "first", 30)
    params = {"branch": str(branch.pk), "exploration": str(branch.exploration_id)}
    answers = []

    def first_generation():
        try:
            answers.append(generate_branch({**params, "lease": "first"}, scheduler))
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_generation)
    thread.start()
    assert _wait_for(lambda: branch.steps.count() >= 2, 30)
    # The first worker looks dead (its lease lapsed) and someone resumes: a second lease.
    leases.store().release(key, "first")
    assert leases.store().acquire(key, "second", 30)
    thread.join(30)
    (answer,) = answers
    assert answer["reason"] == "error" and "lost its lease" in answer["message"], answer
    assert leases.store().holder(key) == "second"
    assert branch.steps.count() < 60
    indices = list(branch.steps.values_list("index", flat=True))
    assert indices == list(range(len(indices)))
    leases.store().release(key, "second")


def test_a_step_that_timed_out_is_never_applied(in_process_worker, settings):
    branch, client = _branch()
    settings.TOKENLENS_TASK_TIMEOUT = 1
    _occupy_model(2.5)
    started = time.monotonic()
    response = client.post(f"/api/v1/branches/{branch.pk}/steps/", {}, "json")
    assert response.status_code == 503 and time.monotonic() - started < 2.4
    assert "busy with other people's work" in response.json()["error"]["message"]
    time.sleep(3)  # the worker is free again, and would have taken the queued step
    assert branch.steps.count() == 0
    settings.TOKENLENS_TASK_TIMEOUT = 180
    assert client.post(f"/api/v1/branches/{branch.pk}/steps/", {}, "json").status_code == 201


def test_work_past_its_deadline_is_neither_done_nor_saved(monkeypatch):
    from worker.computations import EXPIRED, compute

    branch, _ = _branch()
    late = {"branch": str(branch.pk), "mode": "greedy", "expires_at": time.time() - 1}
    assert compute("branch_step", late) == {
        "error": {"field": "non_field_errors", "message": EXPIRED, "status": 503}
    }
    original = Stepper.step_each
    monkeypatch.setattr(
        Stepper, "step_each", lambda self, requests: (time.sleep(0.5), original(self, requests))[1]
    )
    running_late = {**late, "expires_at": time.time() + 0.2}  # it expires during the step
    answer = compute("branch_step", running_late)
    assert "took too long and was not saved" in answer["error"]["message"]
    assert branch.steps.count() == 0
