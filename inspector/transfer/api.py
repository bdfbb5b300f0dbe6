"""REST API v1: export an exploration as JSON, import one, fork one (a copy through the file
format), and a branch's steps as CSV."""

from __future__ import annotations

import json

from django.urls import reverse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes, renderer_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from inspector.api.parsers import JSONParser
from inspector.api.schema import ERROR, documented
from inspector.errors import ServiceError
from inspector.explorations import services as explorations
from inspector.explorations.serializers import ExplorationSerializer
from inspector.transfer import file_format as transfer_validation
from inspector.transfer import services as transfer
from inspector.transfer.views import csv_download

NOT_FOUND = OpenApiResponse(ERROR, description="No such exploration or branch (or not yours)")


class CSVRenderer(BaseRenderer):
    """Lets a client ask for text/csv; the CSV itself is a plain response. Errors are JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, str) else json.dumps(data)


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A .json file exported from TokenLens (at most 20 MB)")


@extend_schema(
    summary="Export an exploration",
    description="Its settings and every branch with its own steps exactly as recorded "
    "(top-N distributions included), parents before children. POST it to "
    "/api/v1/explorations/import/ to make a copy.",
    responses={200: transfer_validation.ExplorationFileSerializer, 404: NOT_FOUND},
)
@api_view(["GET"])
def export_exploration(request, exploration_id):
    exploration = explorations.get_exploration(request, exploration_id, need="view")
    filename = transfer.export_filename(exploration, "json")
    disposition = content_disposition_header(True, filename)
    return Response(
        transfer.export_exploration(exploration), headers={"Content-Disposition": disposition}
    )


@extend_schema(
    summary="Import an exploration",
    description="Send an export as the JSON body, or as a file in the multipart field `file`. "
    "Everything is checked before anything is saved; an error names the first problem and "
    'where it is (field "branches[2].steps[3].index").',
    request={
        "application/json": transfer_validation.ExplorationFileSerializer,
        "multipart/form-data": ImportUploadSerializer,
    },
    responses={
        201: inline_serializer(
            "ImportedExploration",
            {"id": serializers.UUIDField(), "url": serializers.URLField()},
        ),
        400: OpenApiResponse(ERROR, description="The file is not a valid exploration"),
        413: OpenApiResponse(ERROR, description="The file is larger than 20 MB"),
    },
)
@api_view(["POST"])
@parser_classes([JSONParser, MultiPartParser])
def import_exploration(request):
    exploration = transfer.import_exploration(sent_file(request), request)
    url = request.build_absolute_uri(reverse("exploration", args=[exploration.pk]))
    return Response({"id": str(exploration.pk), "url": url}, status=status.HTTP_201_CREATED)


def sent_file(request):
    """The export's content: the multipart `file`, or the JSON body (lesson imports too)."""
    if int(request.META.get("CONTENT_LENGTH") or 0) > transfer_validation.MAX_REQUEST_BYTES:
        limit = transfer_validation.MAX_UPLOAD_BYTES // 2**20
        raise ServiceError(f"The file is too large: at most {limit} MB", "file", status=413)
    if not request.content_type.startswith("multipart/"):
        return request.data
    upload = request.FILES.get("file")
    if upload is None:
        raise ServiceError("Send the file in the multipart field 'file'", "file")
    return transfer.read_upload(upload)


@extend_schema(
    summary="A branch's steps as CSV",
    description="One row per token of the branch, inherited ones included: "
    + ",".join(transfer.CSV_COLUMNS)
    + ". Cells that a spreadsheet would read as a formula start with a quote.",
    responses={(200, "text/csv"): OpenApiTypes.STR, 404: NOT_FOUND},
)
@api_view(["GET"])
@renderer_classes([JSONRenderer, CSVRenderer])
def steps_csv(request, branch_id):
    return csv_download(explorations.get_branch(request, branch_id, need="view"))


@documented(response=ExplorationSerializer, status=201)
@api_view(["POST"])
def fork_exploration(request, exploration_id):
    """Copy an exploration you may read (yours, shared with you, in a lesson) with all its
    branches and recorded steps into your own workspace."""
    source = explorations.get_exploration(request, exploration_id, "fork")
    copy = transfer.copy_exploration(source, request)
    return Response(ExplorationSerializer(copy).data, status=status.HTTP_201_CREATED)
