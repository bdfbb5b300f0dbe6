"""The tokens page and jobs: forms, htmx fragments, progress pushed to the page."""

import uuid

import pytest
from django.test import Client

from inspector.compute import heartbeat as worker_heartbeat
from inspector.models import Job

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def browser():
    client = Client()
    client.get("/")
    return client


def _form(**overrides):
    data = {"model": "smollm2-135m-instruct", "text": "Hello world", "page_id": str(uuid.uuid4())}
    data.update(overrides)
    return data


def test_home_offers_every_model_and_a_websocket(browser):
    html = browser.get("/").content.decode()
    assert 'value="smollm2-135m-instruct"' in html and 'value="gemma-3-270m"' in html
    assert 'ws-connect="/ws/pages/' in html
    assert "htmx" in html and "hx-post" in html


def test_tokenizing_saves_a_job_and_shows_its_tokens(browser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/tokenize/", _form(text="Hello\tworld"), **HTMX)
    assert response.status_code == 200
    job = Job.objects.get()
    assert f'id="job-{job.pk}"' in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.result["count"] == 3
    shown = browser.get(f"/jobs/{job.pk}/", **HTMX).content.decode()
    assert 'data-testid="tokens"' in shown and "3 tokens" in shown
    assert 'title="tab"' in shown
    assert "hx-trigger" not in shown, "a finished job stops polling"


def test_a_pending_job_polls_and_shows_its_stage(browser):
    response = browser.post("/tokenize/", _form(), **HTMX)
    html = response.content.decode()
    assert 'hx-trigger="every 1s"' in html and "Waiting for a worker" in html


def test_without_javascript_the_form_redirects_to_the_job_page(
    browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/tokenize/", _form())
    assert response.status_code == 302
    page = browser.get(response["Location"]).content.decode()
    assert "2 tokens" in page and "<html" in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"text": ""}, "Type some text to tokenize"),
        ({"text": "  "}, "only whitespace"),
        ({"model": "nope"}, "Unknown model"),
    ],
)
def test_bad_input_shows_a_message_in_the_form(browser, overrides, message):
    response = browser.post("/tokenize/", _form(**overrides), **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    plain = browser.post("/tokenize/", _form(**overrides))
    assert plain.status_code == 400 and message in plain.content.decode()
    assert not Job.objects.exists()


def test_text_longer_than_the_context_fails_the_job_with_a_message(
    browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        browser.post("/tokenize/", _form(text="word " * 9000), **HTMX)
    job = Job.objects.get()
    html = browser.get(f"/jobs/{job.pk}/", **HTMX).content.decode()
    assert job.status == Job.Status.FAILED
    assert "8,192 tokens" in html and 'role="alert"' in html


def test_a_job_is_visible_only_to_its_browser(browser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        browser.post("/tokenize/", _form(), **HTMX)
    job = Job.objects.get()
    stranger = Client()
    assert stranger.get(f"/jobs/{job.pk}/").status_code == 404


def test_healthz_reports_the_database(browser):
    body = browser.get("/healthz").json()
    assert body["database"] == "ok"


def test_redis_down_shows_a_banner_and_healthz_degrades(browser, settings):
    settings.TOKENLENS_REDIS_URL = "redis://127.0.0.1:1/0"
    html = browser.get("/").content.decode()
    assert 'id="redis-banner"' in html and "unreachable" in html
    response = browser.get("/healthz")
    assert response.status_code == 503 and response.json()["redis"] == "down"


def test_a_job_that_cannot_be_queued_fails_with_a_message(
    browser, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from inspector.compute import dispatch

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.TOKENLENS_TASKS_IN_PROCESS = False

    def refuse(*args, **kwargs):
        raise OperationalError("Connection refused")

    monkeypatch.setattr(dispatch.app, "send_task", refuse)
    monkeypatch.setattr(
        worker_heartbeat, "live_workers", lambda: {"w:1": ["smollm2-135m-instruct"]}
    )
    with django_capture_on_commit_callbacks(execute=True):
        browser.post("/tokenize/", _form(), **HTMX)
    job = Job.objects.get()
    assert job.status == Job.Status.FAILED and "Redis" in job.error_message


def test_with_no_worker_alive_the_form_says_so_and_saves_no_job(browser, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.TOKENLENS_TASKS_IN_PROCESS = False
    monkeypatch.setattr(worker_heartbeat, "live_workers", dict)
    response = browser.post("/tokenize/", _form(), **HTMX)
    assert response.status_code == 422
    assert "No worker is running" in response.content.decode()
    assert not Job.objects.exists()


def test_model_loading_progress_reaches_the_page(
    browser, monkeypatch, tiny_model_dir, settings, django_capture_on_commit_callbacks
):
    from inspector import broadcast
    from worker import loaded

    settings.TOKENLENS_EXTRA_MODELS = [str(tiny_model_dir)]
    monkeypatch.setattr(loaded, "_registry", None)  # a worker that has loaded nothing yet
    seen = []

    def record(page_id, job_id):
        seen.append(Job.objects.values_list("status", "stage").get(pk=job_id))

    monkeypatch.setattr(broadcast, "job_updated", record)
    key = f"local-{tiny_model_dir.name.lower().replace('_', '-')}"
    with django_capture_on_commit_callbacks(execute=True):
        browser.post("/tokenize/", _form(model=key), **HTMX)
    assert ("running", f"Loading the weights of {tiny_model_dir.name}") in seen
    assert seen[-1] == ("done", "")


def test_a_job_reaches_only_a_page_this_session_opened(browser, django_capture_on_commit_callbacks):
    import re

    own_page = re.search(r"/ws/pages/([0-9a-f-]+)/", browser.get("/").content.decode())[1]
    someone_elses_page = str(uuid.uuid4())
    with django_capture_on_commit_callbacks(execute=True):
        browser.post("/tokenize/", _form(page_id=own_page), **HTMX)
        browser.post("/tokenize/", _form(page_id=someone_elses_page), **HTMX)
    pages = [str(page) if page else None for page in Job.objects.values_list("page_id", flat=True)]
    assert sorted(pages, key=str) == sorted([own_page, None], key=str)
