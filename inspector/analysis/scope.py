"""Whose cached model states an analysis may reuse (see engine/kvcache.py)."""

from __future__ import annotations

from inspector.accounts import access
from inspector.live import following


def cache_scope(request, params: dict) -> str:
    """The person's own scope, or the class's when a live follower's page asks about the text
    the whole class reads (following.class_scope)."""
    return following.class_scope(request, params) or access.principal(request)
