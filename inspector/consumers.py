"""Websocket consumer: turns high-level events into HTML fragments swapped in by htmx."""

from __future__ import annotations

import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from inspector import broadcast
from inspector.models import Job

logger = logging.getLogger(__name__)


class PageConsumer(AsyncWebsocketConsumer):
    """One per open page; it only pushes (the page sends nothing but may, harmlessly)."""

    async def connect(self):
        self.group = broadcast.page_group(self.scope["url_route"]["kwargs"]["page_id"])
        try:
            await self.channel_layer.group_add(self.group, self.channel_name)
        except Exception:  # Redis down: refuse; the page falls back to polling
            logger.warning("Channel layer unavailable; refusing websocket", exc_info=True)
            await self.close(code=1011)
            return
        await self.accept()

    async def disconnect(self, code):
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(
            text_data='<div id="ws-notice" class="notice">This connection only delivers '
            "updates; use the form to ask for work.</div>"
        )

    async def job_update(self, event):
        html = await self._render_job(event["job_id"])
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def _render_job(self, job_id: str) -> str:
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            return ""
        return render_to_string("inspector/home.html#job-status", {"job": job})
