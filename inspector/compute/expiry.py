"""Jobs are not kept forever: one is deleted once nothing has happened to it for
TOKENLENS_JOB_TTL_HOURS (finished that long ago, or started that long ago and never finished,
its worker gone).

A page follows a job only while it runs and for the moment after, so a job changed within the
TTL (at least an hour) is never deleted under a page. `manage.py expire_jobs` deletes them (for
cron); starting a job also does, at most once a minute per process, so the table stays small
without a scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from inspector.models import Job

logger = logging.getLogger(__name__)

EVERY_SECONDS = 60.0
_lock = threading.Lock()
_last_run = -EVERY_SECONDS  # time.monotonic() of the last opportunistic run in this process


def expiry_cutoff(now: datetime | None = None) -> datetime:
    """Jobs last changed before this moment are expired."""
    return (now or timezone.now()) - timedelta(hours=settings.TOKENLENS_JOB_TTL_HOURS)


def expire_jobs(now: datetime | None = None) -> int:
    """Delete every job last changed before the cutoff; how many were deleted.

    `updated_at` is the last save (finish() saves; creation sets it), never before `created_at`.
    """
    deleted, _ = Job.objects.filter(updated_at__lt=expiry_cutoff(now)).delete()
    if deleted:
        logger.info("Deleted %d expired job(s)", deleted)
    return deleted


def expire_jobs_now_and_then() -> int:
    """expire_jobs() at most once every EVERY_SECONDS in this process (cheap to call on every
    job start); a database error is logged, never raised into the request that started a job."""
    global _last_run
    with _lock:
        now = time.monotonic()
        if now - _last_run < EVERY_SECONDS:
            return 0
        _last_run = now
    try:
        with transaction.atomic():  # a savepoint: a failure leaves the caller's transaction
            return expire_jobs()
    except DatabaseError as exc:
        logger.warning("Could not delete expired jobs: %s", exc)
        return 0
