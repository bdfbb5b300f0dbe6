"""POST /api/v1/jobs/ and GET /api/v1/jobs/{id}/: long computations followed to their result."""

import pytest

pytestmark = pytest.mark.django_db

TEXT = "The keeper lit the lamp at dusk and wrote the weather in his logbook before bed."


@pytest.mark.model
def test_a_heads_job_runs_to_its_result(api, django_capture_on_commit_callbacks):
    params = {"model": "gemma-3-270m", "text": TEXT, "k": 2}
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post("/api/v1/jobs/", {"kind": "heads", "params": params}, "json")
    assert started.status_code == 202, started.content
    assert started.json()["kind"] == "heads"
    job = api.get(f"/api/v1/jobs/{started.json()['id']}/").json()
    assert job["status"] == "done" and job["error"] is None
    assert len(job["result"]["heads"]) == 18 * 4 and job["result"]["k"] == 2


def test_bad_params_are_refused_before_a_job_exists(api):
    response = api.post(
        "/api/v1/jobs/", {"kind": "heads", "params": {"model": "nope", "text": TEXT}}, "json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "model"
    response = api.post("/api/v1/jobs/", {"kind": "lunch", "params": {}}, "json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "kind"


@pytest.mark.model
def test_a_failed_job_says_why_and_strangers_cannot_read_jobs(
    api, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    params = {"model": "gemma-3-270m", "text": "lamp " * 2100}  # over the 2048 tokens drawn
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post("/api/v1/jobs/", {"kind": "heads", "params": params}, "json")
    job = api.get(f"/api/v1/jobs/{started.json()['id']}/").json()
    assert job["status"] == "failed" and job["error"]["field"] == "text"
    stranger = APIClient().get(f"/api/v1/jobs/{started.json()['id']}/")
    assert stranger.status_code == 404


@pytest.mark.model
def test_a_script_with_a_token_follows_its_own_jobs(
    student, other_student, django_capture_on_commit_callbacks
):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def script(user):
        return APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    mine, theirs = script(student), script(other_student)
    params = {"model": "gemma-3-270m", "text": TEXT, "k": 2}
    with django_capture_on_commit_callbacks(execute=True):
        started = mine.post("/api/v1/jobs/", {"kind": "heads", "params": params}, "json")
    job_url = f"/api/v1/jobs/{started.json()['id']}/"
    assert mine.get(job_url).json()["status"] == "done"  # each request is a fresh session
    assert theirs.get(job_url).status_code == 404


def test_a_job_that_waited_past_the_timeout_fails_saying_so(settings):
    from datetime import timedelta

    from django.utils import timezone

    from inspector.models import Job
    from worker.jobs import run_job

    settings.TOKENLENS_TASK_TIMEOUT = 60
    job = Job.objects.create(kind="heads", model_key="m", params={"model": "m", "text": "a b"})
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=90))
    run_job(str(job.pk))
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "waited 90 s" in job.error_message
