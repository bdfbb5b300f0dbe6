"""Websocket consumer: turns high-level events into HTML fragments swapped in by htmx."""

from __future__ import annotations

import contextlib
import logging
from types import SimpleNamespace

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import format_html

from inspector import broadcast
from inspector.accounts import access
from inspector.errors import ServiceError
from inspector.models import Job

logger = logging.getLogger(__name__)
REPLY_TO = '<input type="hidden" id="reply-to" name="reply_to" value="{}" hx-swap-oob="true">'


class GroupConsumer(AsyncWebsocketConsumer):
    """Joins one channel group and only pushes; what a page sends gets a notice, not an error."""

    notice = "This connection only delivers updates."

    async def group_for_connection(self) -> str | None:
        """The group to join, or None to refuse the connection (not yours)."""
        raise NotImplementedError

    async def connect(self):
        broadcast.remember_server_loop()
        group = await self.group_for_connection()
        if group is None:
            await self.close(code=4403)
            return
        self.group = group
        try:
            await self.channel_layer.group_add(self.group, self.channel_name)
        except Exception:  # Redis down: refuse; the page falls back to polling
            logger.warning("Channel layer unavailable; refusing websocket", exc_info=True)
            await self.close(code=1011)
            return
        await self.accept()
        await self.accepted()

    async def accepted(self) -> None:
        """Called once the connection is accepted: what to send first."""

    async def disconnect(self, code):
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(
            text_data=f'<div id="ws-notice" class="notice" hx-swap-oob="true">{self.notice}</div>'
        )


# How a page shows a job of each kind (the Tokens page's, unless named here).
JOB_TEMPLATES = {Job.Kind.ADD_MODEL: "inspector/models.html#add-status"}


class PageConsumer(GroupConsumer):
    """One per open Tokens or Models page: its jobs' progress."""

    notice = "This connection only delivers updates; use the form to ask for work."

    async def group_for_connection(self) -> str | None:
        """Only the browser session that opened the page (its id is remembered there)."""
        page_id = self.scope["url_route"]["kwargs"]["page_id"]
        if not await database_sync_to_async(access.owns_page)(self.scope.get("session"), page_id):
            return None
        return broadcast.page_group(page_id)

    async def job_update(self, event):
        html = await self._render_job(event["job_id"])
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def _render_job(self, job_id: str) -> str:
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            return ""
        template = JOB_TEMPLATES.get(job.kind, "inspector/home.html#job-status")
        return render_to_string(template, {"job": job})


class ExplorationConsumer(GroupConsumer):
    """Every open tab of an exploration follows its branches live: a changed branch's tokens
    are re-rendered from the database (so a reconnecting page simply catches up)."""

    notice = "This connection only delivers updates; use the buttons to step and generate."

    async def group_for_connection(self) -> str | None:
        self.exploration_id = str(self.scope["url_route"]["kwargs"]["exploration_id"])
        if not await self._may_follow():
            return None
        return broadcast.exploration_group(self.exploration_id)

    async def accepted(self) -> None:
        # The page sends this channel with its steps: their outcome comes back here
        # (step_done), so no request waits for the model.
        await self.send(text_data=format_html(REPLY_TO, self.channel_name))

    async def step_done(self, event):
        """The pushed step this page asked for is saved (its tokens and the controls come back
        from the database) or failed (the controls come back with the reason)."""
        error = event.get("error")
        extra = {"error": ServiceError(error["message"], error["field"])} if error else {}
        tokens = await self._render(event["branch"], "tokens")
        actions = await self._render(
            event["branch"], "branch-actions", answered=event["asked"], **extra
        )
        await self.send(text_data=tokens + actions)

    async def branch_changed(self, event):
        if event.get("from_index") is None:
            await self.send(text_data=await self._render(event["branch"], "tokens"))
        else:
            await self.send(text_data=await self._render_new(event["branch"], event["from_index"]))

    async def generation_done(self, event):
        notice = {"stopped": "Generation stopped.", "error": "Generation stopped: "}.get(
            event["reason"], ""
        )
        # The whole token list too: it catches up a page that missed a step and redraws the
        # surprisal chart.
        tokens = await self._render(event["branch"], "tokens")
        actions = await self._render(
            event["branch"], "branch-actions", notice=notice + event.get("message", "")
        )
        await self.send(text_data=tokens + actions)

    @database_sync_to_async
    def _render_new(self, branch_id: str, first_index: int) -> str:
        """Only the tokens from first_index on, swapped in where the page's list ends (a page
        that already shows them, like the tab that stepped, has no such place and ignores it)."""
        from inspector.explorations.pages import PAGE
        from inspector.models import Branch, Step

        branch = Branch.objects.filter(pk=branch_id, exploration_id=self.exploration_id).first()
        if branch is None or self._viewer() is None:
            return ""
        steps = list(
            Step.objects.filter(branch=branch, index__gte=first_index)
            .defer("distribution", "params")
            .order_by("index")
        )
        if not steps:
            return ""
        if any(step.mode == Step.Mode.TURN for step in steps):  # a new message: redraw them
            return self._render_now(branch_id, "tokens")
        context = {
            "branch": branch,
            "steps": steps,
            "first_index": first_index,
            "next_index": steps[-1].index + 1,
        }
        return render_to_string(f"{PAGE}#new-tokens", context)

    def _viewer(self):
        """What this connection may do, asked of the same rules as pages and API (a revoked or
        hidden share link closes the door on the next update too)."""
        from inspector.accounts.access import exploration_access
        from inspector.models import Exploration

        exploration = Exploration.objects.filter(pk=self.exploration_id).first()
        if exploration is None or self.scope.get("session") is None:
            return None
        connection = SimpleNamespace(user=self.scope.get("user"), session=self.scope["session"])
        granted = exploration_access(connection, exploration)
        return granted if granted.view else None

    @database_sync_to_async
    def _may_follow(self) -> bool:
        return self._viewer() is not None

    @database_sync_to_async
    def _render(self, branch_id: str, partial: str, **extra) -> str:
        return self._render_now(branch_id, partial, **extra)

    def _render_now(self, branch_id: str, partial: str, **extra) -> str:
        from inspector.explorations.pages import PAGE, branch_context
        from inspector.models import Branch

        branch = Branch.objects.select_related("exploration").filter(pk=branch_id).first()
        if branch is None or str(branch.exploration_id) != self.exploration_id:
            return ""
        viewer = self._viewer()
        if viewer is None:
            return ""
        context = branch_context(branch, viewer, oob=True, **extra)
        return render_to_string(f"{PAGE}#{partial}", context)
