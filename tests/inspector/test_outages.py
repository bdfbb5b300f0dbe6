"""Redis down, a worker missing, a body too big, an unexpected error: each answer is one a
person can read (the banner on pages, the API's JSON error) and comes at once; saved work
stays as it was."""

import socket
import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from inspector.models import Branch, Exploration

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def saved_branch():
    exploration = Exploration.objects.create(model_key=SMOL, prompt="Hello", session_key="")
    return Branch.objects.create(exploration=exploration, label="main")


@pytest.fixture
def redis_down(settings):
    """Every Redis-backed part of the app pointed at a port where nothing listens."""
    url = f"redis://127.0.0.1:{_unused_port()}/0"
    settings.TOKENLENS_REDIS_URL = url
    settings.TOKENLENS_TASKS_IN_PROCESS = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    return url


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_with_redis_down_the_api_answers_a_json_503_at_once(redis_down):
    api = APIClient()
    for call in (
        lambda: api.post("/api/v1/tokenize/", {"model": SMOL, "text": "Hi"}, "json"),
        lambda: api.post("/api/v1/explorations/", {"model": SMOL, "prompt": "Hi"}, "json"),
        lambda: api.post(
            "/api/v1/jobs/", {"kind": "heads", "params": {"model": SMOL, "text": "a b"}}, "json"
        ),
    ):
        response, seconds = _timed(call)
        assert response.status_code == 503, response.content
        assert seconds < 2 and "Redis" in response.json()["error"]["message"]


def test_with_redis_down_pages_render_with_the_banner_and_saved_work_stays(
    redis_down, client, saved_branch
):
    session = client.session
    session["tokenlens_visitor_key"] = "visitor-1"
    session.save()
    Exploration.objects.filter(pk=saved_branch.exploration_id).update(session_key="visitor-1")
    for url in ("/", "/explore/", f"/explore/{saved_branch.exploration_id}/"):
        response, seconds = _timed(lambda url=url: client.get(url))
        assert response.status_code == 200, (url, response.status_code)
        assert 'id="redis-banner"' in response.content.decode() and seconds < 2
    step, seconds = _timed(
        lambda: client.post(f"/branches/{saved_branch.pk}/step/", {"mode": "greedy"})
    )
    assert step.status_code == 503 and seconds < 2, step.status_code
    assert "Redis" in step.content.decode()
    api = APIClient()
    api.cookies = client.cookies
    response = api.post(f"/api/v1/branches/{saved_branch.pk}/steps/", {}, "json")
    assert response.status_code == 503 and response.json()["error"]["message"]
    assert Branch.objects.filter(pk=saved_branch.pk).exists()


def test_a_body_over_the_limit_is_a_json_413_before_anything_reads_it():
    body = b'{"model": "x", "text": "' + b"a" * (20 * 2**20) + b'"}'
    response = Client().generic("POST", "/api/v1/tokenize/", body, "application/json")
    assert response.status_code == 413
    assert response.json()["error"]["field"] == "body"
    assert "limit" in response.json()["error"]["message"]


def test_an_unexpected_error_under_the_api_is_json(monkeypatch):
    from inspector.compute import services

    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "catalog_entries", broken)
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/models/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["message"].startswith("The server failed")
