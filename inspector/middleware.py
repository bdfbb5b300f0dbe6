"""Request checks that come before any view."""

from __future__ import annotations

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request

NUL_MESSAGE = "The {where} holds a NUL character (%00), which no TokenLens address contains"


def _nul_in(request: HttpRequest) -> str | None:
    """ "path" or "query" if that part of the request's address holds a NUL, else None."""
    if "\x00" in request.path or "\x00" in request.path_info:
        return "path"
    query = request.META.get("QUERY_STRING", "")
    if "\x00" in query or "%00" in query:
        return "query"
    return None


class RefuseNulMiddleware:
    """A NUL in the address is a 400: PostgreSQL refuses NUL in text, so a lookup by a slug,
    token or id that holds one would otherwise end as a 500. The API answers in its error
    format; pages get the plain 400 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = _nul_in(request)
        if where is None:
            return self.get_response(request)
        message = NUL_MESSAGE.format(where="address" if where == "path" else "query string")
        if request.path_info.startswith("/api/"):
            return JsonResponse({"error": {"field": where, "message": message}}, status=400)
        return bad_request(request, BadRequest(message))
