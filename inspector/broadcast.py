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
