"""REST API v1 (DRF). Errors are always {"error": {"field": ..., "message": ...}}."""

from __future__ import annotations

from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from inspector import services
from inspector.serializers import DistributionRequestSerializer, TokenizeRequestSerializer


def _first_error(detail, path: tuple[str, ...] = ()) -> tuple[str, str]:
    """The first (dotted field path, message) of a DRF error tree: ("params.top_p", "...")."""
    if isinstance(detail, dict):
        name, value = next(iter(detail.items()))
        return _first_error(value, path if name == "non_field_errors" else (*path, str(name)))
    if isinstance(detail, list) and detail:
        return _first_error(detail[0], path)
    return ".".join(path) or "non_field_errors", str(detail)


def exception_handler(exc, context):
    if isinstance(exc, services.ServiceError):
        return Response({"error": exc.to_dict()}, status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        field, message = _first_error(exc.detail)
    else:
        field, message = "non_field_errors", str(getattr(exc, "detail", exc))
    response.data = {"error": {"field": field, "message": message}}
    return response


@api_view(["GET"])
def models_list(request):
    return Response({"models": services.catalog_entries()})


def _compute(request, serializer_class, kind: str) -> Response:
    """Validate the request, run the computation in a worker and wait for its result."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    result = services.compute_now(kind, dict(serializer.validated_data))
    return Response(result, status=status.HTTP_200_OK)


@api_view(["POST"])
def tokenize(request):
    return _compute(request, TokenizeRequestSerializer, "tokenize")


@api_view(["POST"])
def distribution(request):
    return _compute(request, DistributionRequestSerializer, "distribution")
