"""The one error type the web side's use-cases raise: what to tell the person, about which
field, with which HTTP status. Pages, the API and the consumer each show it their way."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404


class ServiceError(Exception):
    """A request that cannot be served; `field` and `message` are shown to the person."""

    def __init__(self, message: str, field: str = "non_field_errors", status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def page_refusal(error: ServiceError) -> Exception:
    """What a page raises for a refused lookup: 403 for someone who may only read it, else 404
    (nothing tells a stranger it exists)."""
    return PermissionDenied(error.message) if error.status == 403 else Http404(error.message)


# What a person reads when Redis (the queue, the channel layer, leases) cannot be reached.
REDIS_DOWN = (
    "Redis is unreachable, so nothing can be computed or queued right now. Your saved work "
    "is safe; try again once Redis is back."
)
