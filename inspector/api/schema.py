"""OpenAPI (drf-spectacular) pieces shared by the API modules: the error body and the usual
responses, so every operation documents its 400/403/404/415/429/503 the same way."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "field": serializers.CharField(help_text="The request field at fault"),
                "message": serializers.CharField(help_text="What went wrong, in words"),
            },
        )
    },
)
ERRORS = dict.fromkeys((400, 403, 404, 415, 429, 503), ERROR)


def documented(request=None, response=OpenApiTypes.OBJECT, status: int = 200, **kwargs):
    """extend_schema with the request body, the success response and the error responses."""
    return extend_schema(request=request, responses={status: response, **ERRORS}, **kwargs)
