"""Running a Job in the worker: claim it, report progress, store the outcome, tell the page."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from inspector import broadcast
from inspector.compute import budget
from inspector.models import Job
from worker.catalog import add_model
from worker.computations import compute

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The job's page cancelled it: raised at the next progress report, so the work stops
    there (between two integrated-gradients batches, say) and the worker takes other work."""


def run_job(job_id: str) -> None:
    try:
        job = Job.objects.get(pk=job_id)
    except Job.DoesNotExist:
        logger.warning("Job %s vanished before a worker took it", job_id)
        return
    if not job.claim():
        return
    waited = (timezone.now() - job.created_at).total_seconds()
    if waited > settings.TOKENLENS_TASK_TIMEOUT:  # its page stopped waiting: say why
        job.fail(f"This job waited {waited:.0f} s for a worker and was dropped; try again")
        broadcast.job_updated(job.page_id, job.pk)
        return

    def progress(stage: str) -> None:
        if job.cancel_asked():
            raise JobCancelled
        job.set_stage(stage)
        broadcast.job_updated(job.page_id, job.pk)

    try:
        if job.kind == Job.Kind.ADD_MODEL:
            outcome = add_model(job.params, progress)
        else:
            outcome = compute(job.kind, job.params, progress)
    except JobCancelled:
        logger.info("Job %s cancelled at: %s", job_id, job.stage)
        broadcast.job_updated(job.page_id, job.pk)
        return
    except Exception as exc:  # a page must never wait on a crashed job
        logger.exception("Job %s crashed", job_id)
        outcome = {"error": {"field": "", "message": f"The computation failed: {exc}"}}
    if "result" in outcome:  # an adaptive path's added steps count against whoever asked
        budget.charge_actual(job.kind, outcome["result"], job.params.get("charged_to", []))
    job.finish(outcome)
    broadcast.job_updated(job.page_id, job.pk)
