"""The activity log admins read: who did what, when, to which exploration, lesson or link."""

from __future__ import annotations

from inspector.accounts.access import user_of, visitor_key
from inspector.models import AuditEvent


def actor_of(request) -> tuple[object | None, str]:
    """(user or None, a label: the username, or "visitor <first 8 of the session key>")."""
    user = user_of(request)
    if user is not None:
        return user, user.get_username()
    return None, f"visitor {visitor_key(request)[:8]}"


def record(request, action: str, target, summary: str, **detail) -> AuditEvent:
    """Log one action. `target` is the model instance acted on (its class names the type)."""
    actor, label = actor_of(request) if request is not None else (None, "system")
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=label,
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=str(target.pk),
        summary=summary[:300],
        detail=detail,
    )
