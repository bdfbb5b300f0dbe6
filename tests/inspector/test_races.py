"""Operations on one branch racing each other, with real threads against the real database
(PostgreSQL under CI) and the real model: whatever the interleaving, a branch's indices stay
0..n-1, it can step again, and a step never lands on a prefix it was not computed from."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from django.urls import reverse
from rest_framework.test import APIClient

from engine.stepping import Stepper
from inspector.models import Branch
from tests.conftest import require_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.model, pytest.mark.services]
SMOL = "smollm2-135m-instruct"


@pytest.fixture(autouse=True)
def _real_database():
    url = require_env("TOKENLENS_DATABASE_URL")
    assert url.startswith("postgres"), "races are tested against PostgreSQL"


@pytest.fixture
def slow_steps(monkeypatch):
    """Each pass takes 0.4 s longer after its forward pass: the window in which the other
    client's request arrives (the interleaving the fault probe hit 5 times in 8)."""
    original = Stepper.step_each

    def slow(self, requests):
        results = original(self, requests)
        time.sleep(0.4)
        return results

    monkeypatch.setattr(Stepper, "step_each", slow)


def _branch_with_steps(client: APIClient, count: int) -> str:
    created = client.post(
        "/api/v1/explorations/", {"model": SMOL, "prompt": "Once upon a time"}, "json"
    )
    branch_id = created.json()["branches"][0]["id"]
    for _ in range(count):
        response = client.post(f"/api/v1/branches/{branch_id}/steps/", {"mode": "greedy"}, "json")
        assert response.status_code == 201, response.content
    return branch_id


def _in_threads(*calls) -> list:
    """Start each call in its own thread, 30 ms apart; their responses in order."""
    answers: list = [None] * len(calls)

    def run(index, call):
        try:
            answers[index] = call()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
        time.sleep(0.03)
    for thread in threads:
        thread.join(60)
    return answers


def _second_tab(client: APIClient) -> APIClient:
    """Another client with the same browser session (a second tab)."""
    tab = APIClient()
    tab.cookies = client.cookies
    return tab


def _indices(branch_id) -> list[int]:
    return list(Branch.objects.get(pk=branch_id).steps.values_list("index", flat=True))


def test_an_undo_during_a_step_is_refused_and_the_step_kept(api, slow_steps):
    branch_id = _branch_with_steps(api, 5)
    other_tab = _second_tab(api)
    url = f"/api/v1/branches/{branch_id}/"
    step, undo = _in_threads(
        lambda: api.post(url + "steps/", {"mode": "greedy"}, "json"),
        lambda: other_tab.post(url + "undo/", {}, "json"),
    )
    assert step.status_code == 201, step.content
    assert undo.status_code == 409 and undo.json()["error"]["field"] == "branch"
    assert "still under way" in undo.json()["error"]["message"]
    assert _indices(branch_id) == [0, 1, 2, 3, 4, 5]
    assert api.post(url + "undo/", {}, "json").status_code == 200  # free again afterwards
    again = api.post(url + "steps/", {"mode": "greedy"}, "json")
    assert again.status_code == 201 and again.json()["steps"][0]["index"] == 5
    exported = api.get(f"/api/v1/explorations/{Branch.objects.get(pk=branch_id).exploration_id}/")
    assert exported.status_code == 200


def test_two_steps_at_once_save_one_and_refuse_the_other(api, slow_steps):
    branch_id = _branch_with_steps(api, 2)
    other_tab = _second_tab(api)
    url = f"/api/v1/branches/{branch_id}/steps/"
    answers = _in_threads(
        lambda: api.post(url, {"mode": "greedy"}, "json"),
        lambda: other_tab.post(url, {"mode": "sample"}, "json"),
    )
    assert sorted(answer.status_code for answer in answers) == [201, 409]
    assert _indices(branch_id) == [0, 1, 2]


def test_a_fork_racing_an_undo_of_its_parent_keeps_both_whole(api, slow_steps):
    branch_id = _branch_with_steps(api, 4)
    other_tab = _second_tab(api)
    url = f"/api/v1/branches/{branch_id}/"
    fork, undo = _in_threads(
        lambda: api.post(url + "fork/", {"at_index": 4, "token_id": 42}, "json"),
        lambda: other_tab.post(url + "undo/", {}, "json"),
    )
    # The fork holds its parent until its first token is saved: the undo is refused.
    assert fork.status_code == 201, fork.content
    assert undo.status_code == 409
    assert _indices(branch_id) == [0, 1, 2, 3]
    child = Branch.objects.get(pk=fork.json()["id"])
    assert child.token_ids()[:4] == Branch.objects.get(pk=branch_id).token_ids()


def test_a_generation_cannot_start_during_a_step(api, slow_steps):
    branch_id = _branch_with_steps(api, 1)
    other_tab = _second_tab(api)
    url = f"/api/v1/branches/{branch_id}/"
    generate_page = reverse("branch-generate", args=[branch_id])
    step, generate = _in_threads(
        lambda: api.post(url + "steps/", {"mode": "greedy"}, "json"),
        lambda: other_tab.post(generate_page, {}),
    )
    assert step.status_code == 201, step.content
    assert generate.status_code == 409, generate.content
    assert _indices(branch_id) == [0, 1]


def test_two_turns_at_once_save_one_and_a_racing_undo_waits(api, slow_steps):
    created = api.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": "Hi", "use_chat_template": True, "max_new_tokens": 2},
        "json",
    )
    branch_id = created.json()["branches"][0]["id"]
    url = f"/api/v1/branches/{branch_id}/"
    for _ in range(2):
        assert api.post(url + "steps/", {"mode": "greedy"}, "json").status_code == 201
    other_tab = _second_tab(api)
    answers = _in_threads(
        lambda: api.post(url + "turns/", {"text": "Tell me more"}, "json"),
        lambda: other_tab.post(url + "turns/", {"text": "Something else"}, "json"),
        lambda: other_tab.post(url + "undo/", {}, "json"),
    )
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409]
    branch = api.get(url).json()
    assert [turn["role"] for turn in branch["turns"]] == ["user", "assistant", "user"]
    assert branch["turns"][2]["text"] == "Tell me more"
    assert _indices(branch_id) == list(range(branch["length"]))
