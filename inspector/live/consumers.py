"""The live session's websocket (/ws/live/<id>/): who may listen is checked once, at connect;
after that each event arrives already rendered for this connection's audience."""

from __future__ import annotations

from types import SimpleNamespace

from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from inspector.accounts import access
from inspector.errors import ServiceError
from inspector.explorations.consumers import GroupConsumer
from inspector.live import polls, reading, relay
from inspector.live import services as live


class LiveConsumer(GroupConsumer):
    """A presenter's page hears of the class; a follower's page of what the class sees."""

    notice = "This connection only delivers the live class; use the page's buttons."

    async def group_for_connection(self) -> str | None:
        self.session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        self.audience = await self._audience()
        if self.audience is None:
            return None
        group = relay.presenters_group if self.audience == "presenter" else relay.followers_group
        return group(self.session_id)

    @database_sync_to_async
    def _audience(self) -> str | None:
        if self.scope.get("session") is None:
            return None
        request = SimpleNamespace(user=self.scope.get("user"), session=self.scope["session"])
        try:
            session = live.get_session(request, self.session_id)
        except ServiceError:
            return None
        if not session.running:
            return None
        presents = access.may_present(access.user_of(request), session.lesson)
        return "presenter" if presents else "follower"

    async def accepted(self) -> None:
        """A (re)connecting page catches up at once: the state as it is now."""
        await self.send(text_data=await self._catch_up())

    @database_sync_to_async
    def _catch_up(self) -> str:
        from inspector.models import LiveSession

        session = LiveSession.objects.select_related("branch__exploration").get(pk=self.session_id)
        if self.audience == "presenter":
            context = {"session": session, "rows": reading.class_view(session), "oob": True}
            latest = session.polls.order_by("-opened_at").first()
            poll = polls.presenter_box(latest) if latest else ""
            return render_to_string(f"{relay.PAGE}#class-panel", context) + poll
        tokens = relay.follower_tokens(session.branch) if session.branch else ""
        return tokens + relay.state_html(session) + polls.follower_box_of(session)

    async def live_push(self, event):
        await self.send(text_data=event["html"])

    async def live_end(self, event):
        await self.send(text_data=event["html"])
        await self.close(code=4000)
