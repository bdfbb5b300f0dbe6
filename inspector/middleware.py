"""Request checks that come before any view."""

from __future__ import annotations

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse
from django.views.defaults import bad_request

from inspector.api.errors import api_error

NUL_MESSAGE = "The {where} holds a NUL character (%00), which no TokenLens address contains"


def _nul_in(request: HttpRequest) -> str | None:
    """Where the request's address holds a NUL: "path", the name of the query parameter that
    holds it, or "query" (the query string as a whole); None when it holds none."""
    if "\x00" in request.path or "\x00" in request.path_info:
        return "path"
    query = request.META.get("QUERY_STRING", "")
    if "\x00" not in query and "%00" not in query:
        return None
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return name.replace("\x00", "") or "query"
    return "query"


class RefuseNulMiddleware:
    """A NUL in the address is a 400: PostgreSQL refuses NUL in text, so a lookup by a slug,
    token or id that holds one would otherwise end as a 500. The API answers in its error
    format (the field: "path", or the query parameter that holds it); pages get the plain 400
    page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = _nul_in(request)
        if where is None:
            return self.get_response(request)
        part = {"path": "address", "query": "query string"}.get(where, f"parameter {where!r}")
        message = NUL_MESSAGE.format(where=part)
        if request.path_info.startswith("/api/"):
            return api_error(message, 400, field=where)
        return bad_request(request, BadRequest(message))
