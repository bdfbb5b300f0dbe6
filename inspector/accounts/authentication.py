"""API authentication: the browser's session (CSRF checked, visitors included) or a token."""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication


class BrowserSessionAuthentication(SessionAuthentication):
    """DRF's session authentication, but unsafe requests from a visitor's browser session are
    CSRF-checked too: a visitor's explorations belong to their session cookie, so another site
    must not be able to step or delete them. Token requests (no session cookie) are unaffected."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None and self._carries_session(request):
            self.enforce_csrf(request)
        return result

    @staticmethod
    def _carries_session(request) -> bool:
        from django.conf import settings

        return settings.SESSION_COOKIE_NAME in request._request.COOKIES


class BrowserSessionScheme(SessionScheme):
    """Tells drf-spectacular that BrowserSessionAuthentication is cookie (session) auth."""

    target_class = "inspector.accounts.authentication.BrowserSessionAuthentication"
    name = "sessionAuth"
