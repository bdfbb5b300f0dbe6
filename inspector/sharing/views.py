"""Share links and the admins' review pages: thin views over inspector.sharing.services."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from inspector.accounts import access
from inspector.errors import ServiceError
from inspector.explorations import services as explorations
from inspector.models import AuditEvent, ShareLink
from inspector.sharing import services as sharing

BOX = "inspector/partials/share_box.html"
REVIEW = "inspector/review.html"
ACTIVITY = "inspector/activity.html"
PER_PAGE = 50


def _owned(lookup, request: HttpRequest, key):
    """What `lookup` finds if the request owns it: 404 for strangers (nothing tells them
    it exists), 403 for readers such as a share-link holder."""
    try:
        return lookup(request, key, need="own")
    except ServiceError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        raise PermissionDenied(error.message) from None


def _box(request: HttpRequest, exploration) -> HttpResponse:
    """The share box again (htmx), or back to the exploration page (no JavaScript)."""
    if not request.htmx:
        return redirect("exploration", exploration.pk)
    granted = access.exploration_access(request, exploration)
    return render(request, BOX, {"exploration": exploration, "access": granted})


@require_POST
def share_create(request: HttpRequest, exploration_id) -> HttpResponse:
    exploration = _owned(explorations.get_exploration, request, exploration_id)
    sharing.share(exploration, request)
    return _box(request, exploration)


@require_POST
def share_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    link = _owned(sharing.get_link, request, pk)
    sharing.revoke(link, request)
    return _box(request, link.exploration)


@require_GET
def share_open(request: HttpRequest, token: str) -> HttpResponse:
    link = access.resolve_share(token, request)
    if link is None:
        raise Http404("This link does not open (anymore)")
    access.remember_token(request, access.SHARE_TOKENS, token)
    return redirect("exploration", link.exploration_id)


def staff_only(view):
    """Admins only: visitors are sent to sign in, other people get 404."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise Http404("No such page")
        return view(request, *args, **kwargs)

    return wrapped


def _review_page(request: HttpRequest, failure: dict | None = None, status: int = 200):
    """The queue; `failure` puts an error message (and the reason typed) beside one link."""
    page = Paginator(sharing.review_queue(), PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "links": page.object_list, **(failure or {})}
    return render(request, REVIEW, context, status=status)


@require_GET
@staff_only
def review(request: HttpRequest) -> HttpResponse:
    return _review_page(request)


def _reviewed(request: HttpRequest, link: ShareLink, done: str) -> HttpResponse:
    if request.htmx:
        link.refresh_from_db()
        return render(request, f"{REVIEW}#share-row", {"link": link})
    messages.success(request, done)
    return redirect("review")


@require_POST
@staff_only
def review_approve(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(ShareLink.objects.select_related("exploration"), pk=pk)
    try:
        sharing.approve(link, request)
    except ServiceError as error:
        return _review_error(request, link, error)
    return _reviewed(request, link, f"Approved the link to “{link.exploration}”.")


@require_POST
@staff_only
def review_hide(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(ShareLink.objects.select_related("exploration"), pk=pk)
    try:
        sharing.hide(link, request, request.POST.get("reason", ""))
    except ServiceError as error:
        return _review_error(request, link, error)
    return _reviewed(request, link, f"Hid the link to “{link.exploration}”.")


def _review_error(request: HttpRequest, link: ShareLink, error: ServiceError) -> HttpResponse:
    """The row again with the message beside its form (htmx swaps 422), or the whole page."""
    link.refresh_from_db()
    failure = {"failed": link.pk, "error": error.message, "reason": request.POST.get("reason", "")}
    if request.htmx:
        return render(request, f"{REVIEW}#share-row", {"link": link, **failure}, status=422)
    return _review_page(request, failure, status=400)


@require_GET
@staff_only
def activity(request: HttpRequest) -> HttpResponse:
    action = request.GET.get("action", "")
    events = AuditEvent.objects.select_related("actor")
    if action:
        events = events.filter(action=action)
    page = Paginator(events, PER_PAGE).get_page(request.GET.get("page"))
    actions = AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
    context = {"page": page, "events": page.object_list, "action": action, "actions": actions}
    return render(request, ACTIVITY, context)
