"""Share links and their review: use-cases shared by the pages, the API and the Django admin.

An owner shares an exploration as a read-only link; every new link waits for an admin's review
(it opens meanwhile). An admin approves it or hides it with a reason the owner sees; the owner
may revoke it at any time. Every change is written to the activity log (inspector.accounts.audit).
"""

from __future__ import annotations

from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone

from inspector.accounts import audit
from inspector.accounts.access import user_of
from inspector.errors import ServiceError
from inspector.explorations import services as explorations
from inspector.models import Exploration, ShareLink

REASON_MAX = 1000
ADMINS_ONLY = "Only admins review shared explorations"


def share(exploration: Exploration, request) -> ShareLink:
    """The exploration's link in force, or a new one waiting for review. The caller checks
    that the request owns the exploration (explorations.get_exploration)."""
    existing = exploration.active_share
    if existing is not None:
        return existing
    link = ShareLink.objects.create(exploration=exploration, created_by=user_of(request))
    audit.record(
        request, "share.create", link, f"Shared “{exploration}”", exploration=str(exploration.pk)
    )
    return link


def get_link(request, pk, need: str = "own") -> ShareLink:
    """The share link, if the request may `need` its exploration (404 for strangers, 403 for
    readers asking to change it), as explorations.authorize decides."""
    link = ShareLink.objects.select_related("exploration").filter(pk=pk).first()
    if link is None:
        raise ServiceError("No such share link", field="share", status=404)
    try:
        explorations.authorize(request, link.exploration, need)
    except ServiceError as error:
        if error.status == 404:
            error.field, error.message = "share", "No such share link"
        raise
    return link


def revoke(link: ShareLink, request) -> None:
    """Stop the link for everyone, for good (the row stays for the activity log)."""
    if link.revoked_at is not None:
        return
    link.revoked_at = timezone.now()
    link.save(update_fields=["revoked_at"])
    audit.record(
        request,
        "share.revoke",
        link,
        f"Revoked the link to “{link.exploration}”",
        exploration=str(link.exploration_id),
    )


def approve(link: ShareLink, request) -> None:
    """An admin lets the link stand (it opens again if it was hidden)."""
    _review(link, request, ShareLink.Status.APPROVED, "")
    audit.record(
        request,
        "share.approve",
        link,
        f"Approved the link to “{link.exploration}”",
        exploration=str(link.exploration_id),
    )


def hide(link: ShareLink, request, reason: str) -> None:
    """An admin stops the link for everyone but the owner and admins; the owner sees why."""
    reason = clean_reason(reason)
    _review(link, request, ShareLink.Status.HIDDEN, reason)
    audit.record(
        request,
        "share.hide",
        link,
        f"Hid the link to “{link.exploration}”: {reason}",
        exploration=str(link.exploration_id),
        reason=reason,
    )


def clean_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give a reason for hiding this link: its owner sees it", field="reason")
    if len(reason) > REASON_MAX:
        raise ServiceError(
            f"The reason is {len(reason)} characters long; keep it to {REASON_MAX}",
            field="reason",
        )
    return reason


def _review(link: ShareLink, request, status: str, reason: str) -> None:
    user = user_of(request)
    if user is None or not user.is_staff:
        raise ServiceError(ADMINS_ONLY, field="share", status=403)
    if link.revoked_at is not None:
        raise ServiceError("Its owner revoked this link; there is nothing to review", "share")
    link.status, link.reason = status, reason
    link.reviewed_by, link.reviewed_at = user, timezone.now()
    link.save(update_fields=["status", "reason", "reviewed_by", "reviewed_at"])


def review_queue() -> QuerySet[ShareLink]:
    """Links in force: those waiting for review first, then the others, newest first."""
    waiting_first = Case(
        When(status=ShareLink.Status.PENDING, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return (
        ShareLink.objects.filter(revoked_at__isnull=True)
        .select_related("exploration__owner", "created_by", "reviewed_by")
        .order_by(waiting_first, "-created_at", "-pk")
    )


def links_of(request) -> QuerySet[ShareLink]:
    """The links of the request's own explorations, revoked ones included, newest first."""
    mine = explorations.explorations_for(request)
    return ShareLink.objects.filter(exploration__in=mine).select_related(
        "exploration", "reviewed_by"
    )


def share_url(request, link: ShareLink) -> str:
    """The absolute address that opens the link (/s/<token>/)."""
    return request.build_absolute_uri(reverse("share-open", args=[link.token]))
