"""Who may do what with an exploration or a lesson: the one place that decides it.

Pages, the API and the websocket consumer all ask here. Roles:
- owner: the signed-in user who owns it, or the visitor's browser session that made it;
- admin (staff): reads any exploration and reviews shared ones; changes nothing;
- the lesson's instructor: reads the forks students made of their lessons (read-only);
- a share-link holder: reads an exploration whose link they opened, and may fork it;
- a lesson reader: reads (and forks) the explorations of a lesson they may open;
- a co-instructor named on a lesson: reads it; steps and branches its explorations while they
  present it live;
- a live follower: while a live session they joined runs, reads (and forks) its lesson's
  explorations;
- anyone else: nothing (404, so strangers cannot tell what exists).

Opening a share link or a link-only lesson remembers its token in the browser session, so the
read-only page's own requests (branch panels, alternatives, websocket) are allowed too; each
request checks again that the link still resolves (not revoked, not hidden).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet

from inspector.models import Exploration, Lesson, LiveSession, ShareLink

SHARE_TOKENS = "tokenlens_share_tokens"
LESSON_TOKENS = "tokenlens_lesson_tokens"
LIVE_SESSIONS = "tokenlens_live_sessions"
VISITOR_KEY = "tokenlens_visitor_key"
INSTRUCTORS = "Instructor"
STUDENTS = "Student"


@dataclass(frozen=True)
class Access:
    """What one request may do with one exploration. `role` names why (for the page)."""

    role: str
    view: bool = False
    change: bool = False  # step, branch, force, undo, keep the sliders
    own: bool = False  # rename, delete, share (a co-instructor presenting only changes)
    fork: bool = False
    review: bool = False

    @property
    def read_only(self) -> bool:
        return self.view and not self.change


NOTHING = Access(role="none")
# A live session's follower: reads what the class sees and may break away with a copy of it.
LIVE_FOLLOWER = Access(role="live", view=True, fork=True)


def visitor_key(request) -> str:
    """The visitor's key: the key the browser session had when it first came (visitors own work
    by it), creating the session if needed. It stays the same when signing in changes the
    session's own key."""
    session = request.session
    if not session.session_key:
        session.save()
    if VISITOR_KEY not in session:
        # Kept in the session's data, which survives the key change at sign-in, so the work
        # made before signing in can be handed to the account (see accounts.adopt_visitor_work).
        session[VISITOR_KEY] = session.session_key
    return session[VISITOR_KEY]


def principal(request) -> str:
    """Who owns request-scoped things such as jobs: "user:<id>" when signed in (a token script
    included, whose requests carry no session), else the visitor's session key."""
    user = user_of(request)
    return f"user:{user.pk}" if user is not None else visitor_key(request)


def exploration_principal(exploration: Exploration) -> str:
    """Whose work an exploration is, in principal()'s terms: "user:<id>" or the visitor key.
    The worker reuses cached model states only within one principal."""
    return f"user:{exploration.owner_id}" if exploration.owner_id else exploration.session_key


def user_of(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def is_instructor(user) -> bool:
    return bool(user) and (user.is_staff or user.groups.filter(name=INSTRUCTORS).exists())


def may_manage_models(user) -> bool:
    """Adding a model to the catalog (and removing one added so): admins only. Every worker
    loads it into memory and everyone is offered it; a folder path reads the worker's disk."""
    return user is not None and user.is_authenticated and user.is_staff


def may_see_who_added_models(user) -> bool:
    """Which admin added a model from the Models page (a username): admins only."""
    return may_manage_models(user)


def may_present(user, lesson: Lesson) -> bool:
    """The lesson's instructor and its co-instructors present it live."""
    if user is None or not user.is_authenticated:
        return False
    return lesson.owner_id == user.pk or lesson.co_instructors.filter(pk=user.pk).exists()


def joined_live(request) -> QuerySet[LiveSession]:
    """The running live sessions this browser joined."""
    joined = _joined_ids(request)
    if not joined:
        return LiveSession.objects.none()
    return LiveSession.objects.filter(pk__in=joined, ended_at__isnull=True)


def _joined_ids(request) -> list[str]:
    session = getattr(request, "session", None)
    return session.get(LIVE_SESSIONS, []) if session is not None else []


def owned_by(request) -> Q:
    """Explorations (and only those) the request's user or visitor session owns."""
    user = user_of(request)
    if user is not None:
        return Q(owner=user)
    return Q(owner__isnull=True, session_key=visitor_key(request))


def remember_token(request, kind: str, token: str) -> None:
    tokens = list(request.session.get(kind, []))
    if token not in tokens:
        request.session[kind] = [*tokens[-49:], token]


def new_page_id(request) -> uuid.UUID:
    """A fresh id for one open Tokens page that only this browser session can follow: half
    random, half a keyed hash of the random half and the session's visitor key. Nothing is
    stored, so tabs opened at the same moment cannot lose each other's ids."""
    nonce = secrets.token_bytes(8)
    return uuid.UUID(bytes=nonce + _page_mac(visitor_key(request), nonce))


def owns_page(session, page_id) -> bool:
    """Whether page_id was made by new_page_id for this session."""
    visitor = session.get(VISITOR_KEY) if session is not None else None
    try:
        raw = uuid.UUID(str(page_id)).bytes
    except ValueError:
        return False
    return bool(visitor) and hmac.compare_digest(raw[8:], _page_mac(visitor, raw[:8]))


def _page_mac(visitor_key: str, nonce: bytes) -> bytes:
    message = b"tokenlens-page:" + visitor_key.encode() + b":" + nonce
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()[:8]


def viewable_lessons(request) -> QuerySet[Lesson]:
    """Lessons the request may open: published ones, its own, link-only ones it has the link of
    (staff: all)."""
    user = user_of(request)
    if user is not None and user.is_staff:
        return Lesson.objects.all()
    visible = Q(visibility=Lesson.Visibility.PUBLISHED) | Q(
        visibility=Lesson.Visibility.LINK, link_token__in=request.session.get(LESSON_TOKENS, [])
    )
    if user is not None:
        visible |= Q(owner=user) | Q(co_instructors=user)
    return Lesson.objects.filter(visible).distinct()


def lesson_access(request, lesson: Lesson) -> Access:
    user = user_of(request)
    if user is not None and lesson.owner_id == user.pk:
        return Access(role="owner", view=True, change=True, fork=True)
    if viewable_lessons(request).filter(pk=lesson.pk).exists():
        role = "admin" if user is not None and user.is_staff else "reader"
        if user is not None and lesson.co_instructors.filter(pk=user.pk).exists():
            role = "co-instructor"
        return Access(role=role, view=True, fork=True, review=role == "admin")
    return NOTHING


@dataclass(frozen=True)
class QuestionRights:
    """What one request may do with a lesson's questions. An answer is read by its author and
    the lesson's instructors (its owner and co-instructors) only: not by admins, not by other
    students; the lesson's instructors do not answer their own questions."""

    view: bool = False  # read the questions (not their answers before answering)
    edit: bool = False  # add, change, delete questions: the lesson's owner
    answer: bool = False  # a signed-in reader who does not teach the lesson
    read_answers: bool = False  # every student's answers and the class's distribution


def question_rights(request, lesson: Lesson) -> QuestionRights:
    granted = lesson_access(request, lesson)
    if not granted.view:
        return QuestionRights()
    user = user_of(request)
    teaches = may_present(user, lesson)
    return QuestionRights(
        view=True,
        edit=granted.change,
        answer=user is not None and not teaches,
        read_answers=teaches,
    )


def exploration_access(request, exploration: Exploration) -> Access:
    """What this request may do with this exploration (see the module docstring)."""
    if Exploration.objects.filter(owned_by(request), pk=exploration.pk).exists():
        return Access(role="owner", view=True, change=True, own=True, fork=True)
    user = user_of(request)
    if user is not None and user.is_staff:
        return Access(role="admin", view=True, fork=True, review=True)
    lesson = exploration.forked_from_lesson if exploration.forked_from_lesson_id else None
    if user is not None and lesson is not None and lesson.owner_id == user.pk:
        return Access(role="instructor", view=True)
    if user is not None and _presents(user, exploration):
        return Access(role="presenter", view=True, change=True, fork=True)
    if _holds_share_link(request, exploration):
        return Access(role="share", view=True, fork=True)
    if exploration.lesson_items.filter(lesson__in=viewable_lessons(request)).exists():
        return Access(role="lesson", view=True, fork=True)
    if _follows_live(request, exploration):
        return LIVE_FOLLOWER
    return NOTHING


def _presents(user, exploration: Exploration) -> bool:
    """A co-instructor steps and branches a lesson's exploration while they present it live."""
    return LiveSession.objects.filter(
        ended_at__isnull=True, presenter=user, lesson__items__exploration=exploration
    ).exists()


def _follows_live(request, exploration: Exploration) -> bool:
    if not _joined_ids(request):
        return False
    shown = Q(lesson__items__exploration=exploration) | Q(exploration=exploration)
    return joined_live(request).filter(shown).exists()


def _holds_share_link(request, exploration: Exploration) -> bool:
    tokens = request.session.get(SHARE_TOKENS, [])
    if not tokens:
        return False
    links = ShareLink.objects.filter(exploration=exploration, token__in=tokens)
    return links.filter(revoked_at__isnull=True).exclude(status=ShareLink.Status.HIDDEN).exists()


def resolve_share(token: str, request) -> ShareLink | None:
    """The share link behind a token if it opens for this request: a revoked link never does;
    a hidden one only for the exploration's owner and admins."""
    link = ShareLink.objects.select_related("exploration").filter(token=token).first()
    if link is None or link.revoked_at is not None:
        return None
    if link.status == ShareLink.Status.HIDDEN:
        access = exploration_access(request, link.exploration)
        if access.role not in ("owner", "admin"):
            return None
    return link
