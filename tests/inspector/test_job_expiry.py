"""Jobs are deleted once unchanged for TOKENLENS_JOB_TTL_HOURS, never while a page may still be
following them: by `manage.py expire_jobs` and, at most once a minute, when a job starts."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone

from inspector.compute import expiry as job_expiry
from inspector.models import Job
from tests.test_settings import _read_setting

pytestmark = pytest.mark.django_db
DONE, FAILED = Job.Status.DONE, Job.Status.FAILED
PENDING, RUNNING = Job.Status.PENDING, Job.Status.RUNNING


def _job(status: str, hours_ago: float) -> Job:
    """A job created and last changed `hours_ago` (update() leaves auto_now alone)."""
    job = Job.objects.create(kind=Job.Kind.HEADS, model_key="m", status=status)
    when = timezone.now() - timedelta(hours=hours_ago)
    Job.objects.filter(pk=job.pk).update(created_at=when, updated_at=when)
    return job


def _left() -> set:
    return set(Job.objects.values_list("pk", flat=True))


@pytest.fixture(autouse=True)
def _ttl(settings):
    settings.TOKENLENS_JOB_TTL_HOURS = 24


@pytest.mark.parametrize("status", [DONE, FAILED, PENDING, RUNNING])
def test_a_job_unchanged_for_longer_than_the_ttl_is_deleted(status):
    old, recent = _job(status, hours_ago=25), _job(status, hours_ago=23)
    assert job_expiry.expire_jobs() == 1
    assert _left() == {recent.pk}
    assert not Job.objects.filter(pk=old.pk).exists()


def test_a_job_a_page_is_following_is_kept():
    running = Job.objects.create(kind=Job.Kind.ATTRIBUTION, model_key="m", status=RUNNING)
    just_done = _job(DONE, hours_ago=0.01)
    started_long_ago_finished_now = _job(PENDING, hours_ago=30)
    started_long_ago_finished_now.finish({"result": {"scores": []}})  # finish() saves: now
    assert job_expiry.expire_jobs() == 0
    assert _left() == {running.pk, just_done.pk, started_long_ago_finished_now.pk}


def test_the_ttl_is_a_setting(settings):
    settings.TOKENLENS_JOB_TTL_HOURS = 2
    kept, gone = _job(DONE, hours_ago=1.5), _job(DONE, hours_ago=2.5)
    assert job_expiry.expire_jobs() == 1
    assert _left() == {kept.pk}
    assert gone.pk not in _left()


def test_the_command_deletes_expired_jobs_and_says_how_many():
    kept = _job(DONE, hours_ago=1)
    _job(DONE, hours_ago=48), _job(FAILED, hours_ago=100)
    out = StringIO()
    call_command("expire_jobs", stdout=out)
    assert "Deleted 2 job(s) unchanged for over 24 h" in out.getvalue()
    assert _left() == {kept.pk}


def test_the_opportunistic_run_happens_at_most_once_a_minute(
    monkeypatch, django_assert_num_queries
):
    clock = [1000.0]
    monkeypatch.setattr(job_expiry.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(job_expiry, "_last_run", -job_expiry.EVERY_SECONDS)
    _job(DONE, hours_ago=30)
    assert job_expiry.expire_jobs_now_and_then() == 1
    _job(DONE, hours_ago=30)
    clock[0] += 59
    with django_assert_num_queries(0):  # too soon: not even a query
        assert job_expiry.expire_jobs_now_and_then() == 0
    assert len(_left()) == 1
    clock[0] += 2
    assert job_expiry.expire_jobs_now_and_then() == 1
    assert _left() == set()


def test_a_database_error_never_reaches_the_request_starting_a_job(monkeypatch):
    monkeypatch.setattr(job_expiry, "_last_run", -job_expiry.EVERY_SECONDS)
    monkeypatch.setattr(job_expiry.time, "monotonic", lambda: 1000.0)

    def broken(now=None):
        raise DatabaseError("database is locked")

    monkeypatch.setattr(job_expiry, "expire_jobs", broken)
    assert job_expiry.expire_jobs_now_and_then() == 0
    assert Job.objects.count() == 0


@pytest.mark.parametrize("hours", ["0", "-3"])
def test_a_ttl_under_an_hour_fails_loudly(hours):
    with pytest.raises(subprocess.CalledProcessError) as caught:
        _read_setting({"TOKENLENS_JOB_TTL_HOURS": hours}, "s.TOKENLENS_JOB_TTL_HOURS")
    assert "TOKENLENS_JOB_TTL_HOURS must be at least 1" in caught.value.stderr


def test_starting_a_job_expires_old_ones(monkeypatch):
    from inspector.compute import services

    monkeypatch.setattr(job_expiry, "_last_run", -job_expiry.EVERY_SECONDS)
    _job(DONE, hours_ago=30)
    job = services.start_job(Job.Kind.HEADS, {"model": "m"}, session_key="s")
    assert _left() == {job.pk}
