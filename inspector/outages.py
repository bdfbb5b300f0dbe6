"""What a person gets when a service is down or a request is too big, instead of a 500.

- Redis (the queue, the channel layer, leases, the rate limiter) unreachable: the API answers
  its JSON error with 503; a page answers 503 with the banner that says what is wrong. Nothing
  saved is touched: explorations live in the database.
- Any other unhandled error under /api/ is the API's JSON error with 500, never HTML.
- A body over the limits is a 413 before anything reads it (JSON under /api/).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from inspector.api.errors import api_error
from inspector.errors import REDIS_DOWN
from inspector.transfer.file_format import MAX_REQUEST_BYTES

logger = logging.getLogger(__name__)


def _is_outage(exc: BaseException | None) -> bool:
    """Whether exc (or what caused it) is a failure to reach Redis or the broker, or no
    database connection came free in time (the pool is exhausted)."""
    import redis
    from kombu.exceptions import OperationalError
    from psycopg_pool import PoolTimeout

    unreachable = redis.RedisError | OperationalError | ConnectionRefusedError | PoolTimeout
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, unreachable):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def _body_limit(request: HttpRequest) -> int:
    """Imports take a file (multipart or a JSON body) up to the import limit; any other
    request, Django's limit for a request body (2.5 MB by default)."""
    if request.path_info.endswith("/import/"):
        return MAX_REQUEST_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or MAX_REQUEST_BYTES


class OutageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = _body_limit(request)
        if length > limit:
            message = f"The request body is {length:,} bytes; the limit is {limit:,} bytes"
            if is_api(request):
                return api_error(message, 413, field="body")
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if _is_outage(exc):
            logger.warning("Redis unreachable during %s %s: %s", request.method, request.path, exc)
            if is_api(request):
                return api_error(REDIS_DOWN, 503)
            html = render_to_string("503.html", {"message": REDIS_DOWN}, request=request)
            return HttpResponse(html, status=503)
        if is_api(request):
            logger.exception("Unhandled error in %s %s", request.method, request.path)
            return api_error("The server failed to answer this request; it was logged", 500)
        return None
