"""REST API v1 (DRF). Errors are always {"error": {"field": ..., "message": ...}}."""

from __future__ import annotations

from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from inspector import access, explorations, limits, services
from inspector.outages import api_error
from inspector.schema import documented
from inspector.serializers import (
    AttentionRequestSerializer,
    AttributionRequestSerializer,
    BranchLabelSerializer,
    BranchSerializer,
    BranchSummarySerializer,
    DistributionRequestSerializer,
    EmbeddingsRequestSerializer,
    ExplorationSerializer,
    ExplorationTitleSerializer,
    ForkRequestSerializer,
    HeadsRequestSerializer,
    LensRequestSerializer,
    SequenceRequestSerializer,
    StepRequestSerializer,
    StepSerializer,
    VocabularyRequestSerializer,
)


def first_error(detail, path: tuple[str, ...] = ()) -> tuple[str, str]:
    """The first (dotted field path, message) of a DRF error tree: ("params.top_p", "...")."""
    if isinstance(detail, dict):
        name, value = next(iter(detail.items()))
        return first_error(value, path if name == "non_field_errors" else (*path, str(name)))
    if isinstance(detail, list) and detail:
        return first_error(detail[0], path)
    return ".".join(path) or "non_field_errors", str(detail)


def exception_handler(exc, context):
    if isinstance(exc, services.ServiceError):
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


@documented()
@api_view(["GET"])
def models_list(request):
    return Response({"models": services.catalog_entries()})


def _compute(request, serializer_class, kind: str) -> Response:
    """Validate the request, run the computation in a worker and wait for its result."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    # Cached model states are reused only within one person's own requests (see kvcache).
    params = {**serializer.validated_data, "cache_scope": access.principal(request)}
    result = services.compute_now(kind, params)
    return Response(result, status=status.HTTP_200_OK)


@documented(SequenceRequestSerializer)
@api_view(["POST"])
def tokenize(request):
    return _compute(request, SequenceRequestSerializer, "tokenize")


@documented(AttentionRequestSerializer)
@api_view(["POST"])
def attention(request):
    return _compute(request, AttentionRequestSerializer, "attention")


@documented(AttributionRequestSerializer)
@api_view(["POST"])
def attribution(request):
    return _compute(request, AttributionRequestSerializer, "attribution")


@documented(HeadsRequestSerializer)
@api_view(["POST"])
def heads(request):
    return _compute(request, HeadsRequestSerializer, "heads")


@documented(EmbeddingsRequestSerializer)
@api_view(["POST"])
def embeddings(request):
    return _compute(request, EmbeddingsRequestSerializer, "embeddings")


@documented(VocabularyRequestSerializer)
@api_view(["POST"])
def vocabulary(request):
    return _compute(request, VocabularyRequestSerializer, "vocabulary")


@documented(DistributionRequestSerializer)
@api_view(["POST"])
def distribution(request):
    return _compute(request, DistributionRequestSerializer, "distribution")


@documented(LensRequestSerializer)
@api_view(["POST"])
def logit_lens(request):
    return _compute(request, LensRequestSerializer, "logit_lens")


def _save_changes(serializer_class, instance, data) -> None:
    """PATCH: validate the fields given and save them (the serializer names what may change)."""
    serializer = serializer_class(instance, data=data, partial=True)
    serializer.is_valid(raise_exception=True)
    serializer.save()


@extend_schema_view(
    list=documented(response=ExplorationSerializer(many=True)),
    create=documented(ExplorationSerializer, ExplorationSerializer, status=201),
    retrieve=documented(response=ExplorationSerializer),
    partial_update=documented(ExplorationTitleSerializer, ExplorationSerializer),
    destroy=documented(response=None, status=204),
    branches=documented(response=BranchSummarySerializer(many=True)),
    fork=documented(response=ExplorationSerializer, status=201),
)
class ExplorationViewSet(viewsets.ViewSet):
    """Explorations of the signed-in user (or of this browser session for visitors)."""

    lookup_value_converter = "uuid"

    def list(self, request):
        mine = explorations.explorations_for(request).prefetch_related("branches")
        return Response(ExplorationSerializer(mine, many=True).data)

    def create(self, request):
        serializer = ExplorationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        exploration = explorations.create_exploration(request, dict(serializer.validated_data))
        return Response(ExplorationSerializer(exploration).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        exploration = explorations.get_exploration(request, pk, "view")
        return Response(ExplorationSerializer(exploration).data)

    def partial_update(self, request, pk=None):
        exploration = explorations.get_exploration(request, pk)
        _save_changes(ExplorationTitleSerializer, exploration, request.data)
        return Response(ExplorationSerializer(exploration).data)

    def destroy(self, request, pk=None):
        explorations.delete_exploration(request, explorations.get_exploration(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"])
    def branches(self, request, pk=None):
        exploration = explorations.get_exploration(request, pk, "view")
        return Response(BranchSummarySerializer(exploration.branches.all(), many=True).data)

    @action(detail=True, methods=["post"])
    def fork(self, request, pk=None):
        """Copy an exploration you may read (yours, shared with you, in a lesson) with all its
        branches and recorded steps into your own workspace."""
        from inspector.transfer import copy_exploration

        source = explorations.get_exploration(request, pk, "fork")
        copy = copy_exploration(source, request)
        return Response(ExplorationSerializer(copy).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    retrieve=documented(response=BranchSerializer),
    partial_update=documented(BranchLabelSerializer, BranchSerializer),
    destroy=documented(response=None, status=204),
    steps=documented(StepRequestSerializer, status=201),
    fork=documented(ForkRequestSerializer, BranchSerializer, status=201),
    undo=documented(response=BranchSerializer),
)
class BranchViewSet(viewsets.ViewSet):
    """A branch with its whole sequence; step, fork and undo are verbs on it."""

    lookup_value_converter = "uuid"

    def retrieve(self, request, pk=None):
        return Response(BranchSerializer(explorations.get_branch(request, pk, "view")).data)

    def partial_update(self, request, pk=None):
        branch = explorations.get_branch(request, pk)
        _save_changes(BranchLabelSerializer, branch, request.data)
        return Response(BranchSerializer(branch).data)

    def destroy(self, request, pk=None):
        explorations.delete_branch(explorations.get_branch(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def steps(self, request, pk=None):
        branch = explorations.get_branch(request, pk)
        serializer = StepRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limits.check_generation_rate(request)
        steps = explorations.step(branch, **serializer.validated_data)
        body = {
            "steps": StepSerializer(steps, many=True).data,
            "finish_reason": branch.finish_reason or None,
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def fork(self, request, pk=None):
        branch = explorations.get_branch(request, pk)
        serializer = ForkRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limits.check_generation_rate(request)
        child = explorations.fork(branch, **serializer.validated_data)
        return Response(BranchSerializer(child).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def undo(self, request, pk=None):
        branch = explorations.get_branch(request, pk)
        explorations.undo(branch)
        return Response(BranchSerializer(branch).data)
