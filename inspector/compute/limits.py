"""Limits on generation: a per-person rate (django-ratelimit, counted in the cache) and caps
on prompt length, tokens per branch and branches per exploration, each with a clear message."""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import is_ratelimited

from inspector.compute import budget
from inspector.errors import ServiceError

UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


def _person(group: str, request) -> str:
    """Whom the rate counts for: the signed-in user, else the visitor's browser session, else
    (no session cookie) the address, so a cookie-less client gets no fresh count per request."""
    return budget.identity(request)


def rate_in_words(rate: str) -> str:
    count, _, period = rate.partition("/")
    unit = UNITS.get(period[-1:], period)
    return f"{count} per {unit}"


def check_generation_rate(request) -> None:
    """Count one generation request (step, generate to the end, branch) and refuse it (429)
    once the person is over TOKENLENS_GENERATION_RATE."""
    rate = settings.TOKENLENS_GENERATION_RATE
    if is_ratelimited(request, group="generation", key=_person, rate=rate, increment=True):
        raise ServiceError(
            f"Too many generation requests: the limit is {rate_in_words(rate)}. "
            "Wait a little and try again; nothing you made was lost.",
            field="rate_limit",
            status=429,
        )


def check_room_for_tokens(length: int) -> None:
    limit = settings.TOKENLENS_MAX_STEPS_PER_BRANCH
    if length >= limit:
        raise ServiceError(
            f"This branch has reached the limit of {limit:,} tokens; branch off an earlier "
            "token to go on",
            field="branch",
        )


def check_room_for_branch(branch_count: int) -> None:
    limit = settings.TOKENLENS_MAX_BRANCHES
    if branch_count >= limit:
        raise ServiceError(
            f"This exploration has reached the limit of {limit} branches; delete one to start "
            "another",
            field="branch",
        )
