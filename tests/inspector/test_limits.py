"""Limits and abuse: the per-person generation rate, caps on prompt length, tokens per branch
and branches per exploration (each with a clear message and nothing lost), inert user HTML."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from inspector.models import Branch, Exploration, Step
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def _exploration(client, prompt="The capital of France is", **extra):
    response = client.post(
        "/api/v1/explorations/", {"model": SMOL, "prompt": prompt, **extra}, "json"
    )
    assert response.status_code == 201, response.content
    return Exploration.objects.get(pk=response.json()["id"])


def _step(client, branch):
    return client.post(f"/api/v1/branches/{branch.pk}/steps/", {"mode": "greedy"}, "json")


def test_generation_over_the_rate_is_refused_with_429_and_a_message(api, settings):
    settings.TOKENLENS_GENERATION_RATE = "2/m"
    root = _exploration(api).root
    assert [_step(api, root).status_code for _ in range(2)] == [201, 201]
    refused = _step(api, root)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["field"] == "rate_limit" and "2 per minute" in error["message"]
    assert Step.objects.filter(branch=root).count() == 2


def test_the_rate_counts_per_person(api, student, settings):
    settings.TOKENLENS_GENERATION_RATE = "1/m"
    root = _exploration(api).root
    assert _step(api, root).status_code == 201
    assert _step(api, root).status_code == 429
    signed_in = client_for(student)
    theirs = _exploration(signed_in).root
    assert _step(signed_in, theirs).status_code == 201


def test_the_page_shows_the_rate_message_in_the_branch_panel(api, settings):
    client = api
    settings.TOKENLENS_GENERATION_RATE = "1/m"
    exploration = _exploration(client)
    url = f"/branches/{exploration.root.pk}/step/"
    assert client.post(url, {"mode": "greedy"}, HTTP_HX_REQUEST="true").status_code == 200
    refused = client.post(url, {"mode": "greedy"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422
    assert "Too many generation requests" in refused.content.decode()


def test_a_branch_stops_at_the_token_limit(api, settings):
    root = _exploration(api, max_new_tokens=20).root
    settings.TOKENLENS_MAX_STEPS_PER_BRANCH = 2  # lowered after the exploration was made
    _step(api, root)
    _step(api, root)
    refused = _step(api, root)
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "room for 0 more (the limit is 2 tokens a branch)" in message, message
    assert root.length == 2


def test_more_new_tokens_than_a_branch_may_hold_is_refused(api, settings):
    settings.TOKENLENS_MAX_STEPS_PER_BRANCH = 100
    response = api.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": "Hi", "max_new_tokens": 101},
        "json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "max_new_tokens"


def test_an_exploration_stops_at_the_branch_limit(api, settings):
    settings.TOKENLENS_MAX_BRANCHES = 2
    root = _exploration(api).root
    _step(api, root)
    fork = {"at_index": 0, "token_id": 1000}
    assert api.post(f"/api/v1/branches/{root.pk}/fork/", fork, "json").status_code == 201
    refused = api.post(f"/api/v1/branches/{root.pk}/fork/", fork, "json")
    assert refused.status_code == 400
    assert "limit of 2 branches" in refused.json()["error"]["message"]
    assert Branch.objects.filter(exploration=root.exploration).count() == 2


def test_a_prompt_over_the_character_limit_is_refused(api, settings):
    settings.TOKENLENS_MAX_PROMPT_CHARS = 10
    response = api.post("/api/v1/explorations/", {"model": SMOL, "prompt": "x" * 11}, "json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "prompt" and "at most 10" in error["message"]
    assert not Exploration.objects.exists()


def test_html_in_prompts_and_titles_is_shown_as_text(api):
    client = api
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    exploration = _exploration(client, prompt=attack)
    client.post(f"/explore/{exploration.pk}/rename/", {"title": attack})
    for url in (f"/explore/{exploration.pk}/", "/explore/"):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert" in html
