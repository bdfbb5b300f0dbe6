"""REST API for the catalog: GET /api/v1/models/ lists it (everyone); POST adds a Hugging
Face id or a local folder and DELETE /api/v1/models/{key}/ removes an added one (admins;
the same use-cases as the Models page: inspector.catalog.services)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from inspector.api.schema import ERROR, ERRORS
from inspector.catalog import services as catalog
from inspector.catalog.serializers import (
    AddedModelSerializer,
    AddModelSerializer,
    CatalogSerializer,
)


@extend_schema(
    methods=["GET"],
    request=None,
    responses={200: CatalogSerializer, **ERRORS},
    description="The catalog: packaged models, TOKENLENS_EXTRA_MODELS, then models added "
    "here once ready, each with what is known of it without loading it (who added a model: "
    "for admins only, null for everyone else).",
)
@extend_schema(
    methods=["POST"],
    request=AddModelSerializer,
    responses={202: AddedModelSerializer, 409: ERROR, **ERRORS},
    description="Admins only: add a Hugging Face id or a local folder. The entry is saved as "
    "'adding' and a worker loads and checks it; follow its job (GET /api/v1/jobs/{id}/). On "
    "success it becomes 'ready' with its card; on failure the job says why and the entry "
    "is gone. 409: the catalog has it already (or it is being added).",
)
@api_view(["GET", "POST"])
def models(request):
    if request.method == "GET":
        return Response({"models": catalog.catalog_entries(request)})
    catalog.require_admin(request)
    serializer = AddModelSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    entry = catalog.add(request, serializer.validated_data["reference"])
    return Response(AddedModelSerializer(entry).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(
    request=None,
    responses={204: None, 409: ERROR, **ERRORS},
    description="Admins only: remove a model added from the Models page. 409 while it is being "
    "added or while explorations use it; 400 for a packaged or TOKENLENS_EXTRA_MODELS model.",
)
@api_view(["DELETE"])
def model_detail(request, key):
    catalog.remove(request, catalog.get_added(request, key))
    return Response(status=status.HTTP_204_NO_CONTENT)
