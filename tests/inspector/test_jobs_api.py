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


@pytest.mark.model
@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_job_stops_it_at_its_next_step(api, settings, caplog):
    """Integrated gradients at 128 steps on the embedded worker's thread, cancelled after its
    first steps: the worker stops there, and the job stays cancelled."""
    import logging
    import time

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.TOKENLENS_TASKS_IN_PROCESS = True
    caplog.set_level(logging.INFO, logger="worker.jobs")
    params = {
        "model": "smollm2-135m-instruct",
        "text": TEXT * 4,
        "target_id": 13,
        "method": "integrated_gradients",
        "n_steps": 128,
    }
    started = api.post("/api/v1/jobs/", {"kind": "attribution", "params": params}, "json")
    assert started.status_code == 202, started.content
    url = f"/api/v1/jobs/{started.json()['id']}/"
    deadline = time.monotonic() + 120
    while "steps" not in api.get(url).json()["stage"] and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = api.post(url + "cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    while "cancelled at" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = [r.getMessage() for r in caplog.records if "cancelled at" in r.getMessage()]
    done, total = map(int, line.split("gradients: ")[1].split(" steps")[0].split(" of "))
    assert total == 128 and done < total  # it stopped on the way
    job = api.get(url).json()
    assert job["status"] == "cancelled" and job["result"] is None and job["stage"] == "Cancelled"
    again = api.post(url + "cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_a_finished_job_cannot_be_cancelled_and_strangers_cannot_cancel(student, other_student):
    from inspector.models import Job
    from tests.conftest import client_for

    job = Job.objects.create(
        kind="heads", model_key="m", params={}, session_key=f"user:{student.pk}"
    )
    url = f"/api/v1/jobs/{job.pk}/cancel/"
    assert client_for(other_student).post(url).status_code == 404
    job.finish({"result": {"heads": []}})
    refused = client_for(student).post(url)
    assert (
        refused.status_code == 409
        and refused.json()["error"]["message"] == "This job is already done"
    )
    job.cancel()  # too late: the result stays
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.result == {"heads": []}


def test_a_result_arriving_after_a_cancel_does_not_overwrite_it(student):
    from inspector.models import Job

    job = Job.objects.create(
        kind="heads", model_key="m", params={}, session_key=f"user:{student.pk}"
    )
    assert job.claim() and job.cancel()
    job.finish({"result": {"late": True}})
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.result is None
