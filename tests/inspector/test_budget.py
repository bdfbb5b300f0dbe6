"""The compute budget: every kind of model work is priced before it is queued, a request dearer
than a whole budget is a 400 naming what to change, a person over their minute's budget gets
a 429, visitors get less, and a client without cookies gets no fresh budget per request."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


@pytest.fixture(autouse=True)
def _small_budgets(settings, monkeypatch):
    from inspector.compute import budget

    cache.clear()
    monkeypatch.setattr(budget, "WINDOW_SECONDS", 10**9)  # no minute boundary mid-test
    settings.TOKENLENS_COMPUTE_BUDGET = 10
    settings.TOKENLENS_VISITOR_BUDGET = 3
    settings.TOKENLENS_VISITORS_PER_ADDRESS = 2


def _tokenize(client):
    return client.post("/api/v1/vocabulary/", {"model": SMOL, "word": "cat"}, "json")


@pytest.mark.model
def test_a_client_without_cookies_gets_no_fresh_budget_per_request():
    answers = [_tokenize(APIClient()).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = _tokenize(APIClient()).json()["error"]
    assert refused["field"] == "rate_limit" and "refills in" in refused["message"]


@pytest.mark.model
def test_visitors_behind_one_address_share_a_cap(api):
    first, second, third = APIClient(), APIClient(), APIClient()
    for client in (first, second, third):
        client.get("/explore/")  # a browser session each
    spent = [_tokenize(first).status_code for _ in range(3)]
    spent += [_tokenize(second).status_code for _ in range(3)]
    assert spent == [200] * 6  # 2 visitors' budgets of 3 from this address
    assert _tokenize(third).status_code == 429


@pytest.mark.model
def test_signed_in_people_get_more_than_visitors(student):
    client = client_for(student)
    answers = [_tokenize(client).status_code for _ in range(11)]
    assert answers == [200] * 10 + [429]


def test_a_request_dearer_than_a_whole_budget_names_what_to_change(student, settings):
    settings.TOKENLENS_COMPUTE_BUDGET = 1000
    text = "The cat sat on the mat. " * 10
    payload = {"model": SMOL, "text": text, "target_id": 5, "method": "integrated_gradients"}
    response = client_for(student).post("/api/v1/attribution/", {**payload, "n_steps": 128}, "json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "n_steps" and "1,000" in error["message"]


def test_jobs_steps_and_generation_are_charged_too(student, settings):
    client = client_for(student)
    settings.TOKENLENS_COMPUTE_BUDGET = 1
    job = {"kind": "heads", "params": {"model": SMOL, "text": "The cat sat on the mat"}}
    assert client.post("/api/v1/jobs/", job, "json").status_code == 400  # dearer than 1
    created = client.post("/api/v1/explorations/", {"model": SMOL, "prompt": "Hi"}, "json")
    assert created.status_code == 201
    branch = created.json()["branches"][0]["id"]
    step = client.post(f"/api/v1/branches/{branch}/steps/", {}, "json")
    assert step.status_code == 429 and step.json()["error"]["field"] == "rate_limit"
    page = client.post(f"/branches/{branch}/generate/", HTTP_HX_REQUEST="true")
    assert page.status_code == 422
    assert "costs about 128 token passes (generating up to 128 tokens)" in page.content.decode()
    assert "Lower the exploration&#x27;s max new tokens" in page.content.decode()


@pytest.mark.model
def test_attention_over_the_cell_limit_is_refused_before_any_forward_pass(settings):
    settings.TOKENLENS_MAX_ATTENTION_CELLS = 10_000
    settings.TOKENLENS_VISITOR_BUDGET = 10**9
    response = APIClient().post(
        "/api/v1/attention/",
        {"model": SMOL, "text": "one two three four five six seven", "layers": list(range(30))},
        "json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "layers" and "one request may hold 10,000" in error["message"]


@pytest.mark.model
def test_a_step_is_charged_for_what_the_worker_really_ran(settings):
    settings.TOKENLENS_VISITOR_BUDGET = 60
    settings.TOKENLENS_VISITORS_PER_ADDRESS = 1000
    client = APIClient()
    client.get("/explore/")
    prompt = "The quick brown fox jumps over the lazy dog near the quiet river bank today"
    created = client.post("/api/v1/explorations/", {"model": SMOL, "prompt": prompt}, "json")
    branch = created.json()["branches"][0]["id"]
    url = f"/api/v1/branches/{branch}/steps/"
    assert client.post(url, {}, "json").status_code == 201  # nothing cached: the whole prompt
    spent = _spent_by_the_visitor()
    assert spent > 10
    assert client.post(url, {}, "json").status_code == 201  # cached now: one more token
    assert _spent_by_the_visitor() == spent + 1


def _spent_by_the_visitor() -> int:
    """This minute's units of the one visitor who made an exploration."""
    from inspector.compute import budget
    from inspector.models import Exploration

    (exploration,) = Exploration.objects.all()
    return cache.get(budget._counter(f"visitor:{exploration.session_key}"))
