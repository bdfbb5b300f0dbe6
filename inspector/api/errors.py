"""The API's one error shape, {"error": {"field": ..., "message": ...}}, and the one flattener
that turns a DRF error tree into it (pages, the import check and the API all name a field the
same way: "params.top_p", "branches[2].steps[3].index")."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from inspector.errors import ServiceError


def api_error(message: str, status: int, field: str = "non_field_errors") -> JsonResponse:
    """The API's error body, for answers made outside DRF (middleware, the JSON 404)."""
    return JsonResponse({"error": {"field": field, "message": message}}, status=status)


def first_error(detail, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of a DRF error tree, list positions in brackets."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if value:
                where = path if key == "non_field_errors" else _join(path, key)
                return first_error(value, where)
    if isinstance(detail, list):
        for position, value in enumerate(detail):
            if isinstance(value, dict | list):
                if value:
                    return first_error(value, f"{path}[{position}]")
            else:
                return path or "non_field_errors", str(value)
    return path or "non_field_errors", str(detail)


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def exception_handler(exc, context):
    """DRF's handler with every error in the one shape; a ServiceError keeps its status."""
    if isinstance(exc, ServiceError):
        return Response({"error": exc.to_dict()}, status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        field, message = first_error(exc.detail)
    else:
        field, message = "non_field_errors", str(getattr(exc, "detail", exc))
    response.data = {"error": {"field": field, "message": message}}
    return response


@csrf_exempt  # it changes nothing, and unsafe methods get the same JSON 404 as GET
def not_found(request, path: str = ""):
    """Any other address under /api/v1/ (an id that is not a uuid or a number included): the
    API's JSON error, not Django's HTML 404 page."""
    message = f"No API endpoint or object at {request.path}"
    return api_error(message, 404, field="path")
