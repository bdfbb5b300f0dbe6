"""The one place that knows channel group names and event types."""

from __future__ import annotations

import logging
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

JOB_UPDATE = "job.update"


def page_group(page_id: UUID | str) -> str:
    """Each open page has its own group: its jobs' progress goes to that tab only."""
    return f"page.{page_id}"


def job_updated(page_id: UUID | str | None, job_id: UUID | str) -> None:
    """Tell the page that a job changed; the consumer reads the row and renders it."""
    if page_id is None:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(
            page_group(page_id), {"type": JOB_UPDATE, "job_id": str(job_id)}
        )
    except Exception:  # pages fall back to polling the row
        logger.warning("Could not push job %s to its page", job_id, exc_info=True)


BRANCH_CHANGED = "branch.changed"
GENERATION_DONE = "generation.done"


def exploration_group(exploration_id: UUID | str) -> str:
    """Every open tab of an exploration: they all follow its branches live."""
    return f"exploration.{exploration_id}"


def _send(group: str, event: dict) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, event)
    except Exception:  # a reload shows everything: the rows are saved
        logger.warning("Could not push %s to %s", event["type"], group, exc_info=True)


def branch_changed(exploration_id, branch_id) -> None:
    """A branch gained or lost tokens; open pages re-render its tokens from the database."""
    _send(exploration_group(exploration_id), {"type": BRANCH_CHANGED, "branch": str(branch_id)})


def generation_done(exploration_id, branch_id, reason: str, message: str = "") -> None:
    """Generate-to-end finished (reason: a finish reason, "stopped" or "error")."""
    _send(
        exploration_group(exploration_id),
        {"type": GENERATION_DONE, "branch": str(branch_id), "reason": reason, "message": message},
    )
