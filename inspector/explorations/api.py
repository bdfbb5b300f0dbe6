"""REST API v1 for explorations and branches: the same use-cases as the pages
(inspector.explorations.services); step, fork and undo are verbs on a branch."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from inspector.api.schema import documented
from inspector.compute import limits
from inspector.explorations import answered_later
from inspector.explorations import services as explorations
from inspector.explorations.serializers import (
    BranchLabelSerializer,
    BranchSerializer,
    BranchSummarySerializer,
    ExplorationSerializer,
    ExplorationTitleSerializer,
    ForkRequestSerializer,
    StepRequestSerializer,
    StepSerializer,
    TurnRequestSerializer,
    TurnsAddedSerializer,
)
from inspector.models import Branch, Step


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
        exploration = explorations.get_exploration(request, pk, "own")
        _save_changes(ExplorationTitleSerializer, exploration, request.data)
        return Response(ExplorationSerializer(exploration).data)

    def destroy(self, request, pk=None):
        exploration = explorations.get_exploration(request, pk, "own")
        explorations.delete_exploration(request, exploration)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"])
    def branches(self, request, pk=None):
        exploration = explorations.get_exploration(request, pk, "view")
        return Response(BranchSummarySerializer(exploration.branches.all(), many=True).data)


@extend_schema_view(
    retrieve=documented(response=BranchSerializer),
    partial_update=documented(BranchLabelSerializer, BranchSerializer),
    destroy=documented(response=None, status=204),
    steps=documented(StepRequestSerializer, status=201),
    fork=documented(ForkRequestSerializer, BranchSerializer, status=201),
    undo=documented(response=BranchSerializer),
    turns=documented(TurnRequestSerializer, TurnsAddedSerializer, status=201),
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
        reply_to = answered_later.reply_channel(request)
        if reply_to:  # no thread waits: the answer is built when the worker sends it
            fields = serializer.validated_data
            pushed = explorations.push_step(
                branch, fields["mode"], fields.get("token_id"), fields.get("text"), reply_to
            )
            return answered_later.answer_later("steps", branch.pk, pushed)
        steps = explorations.step(branch, **serializer.validated_data)
        return Response(_steps_body(steps, branch.finish_reason), status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def turns(self, request, pk=None):
        """Append a user's turn to a conversation whose last reply has ended."""
        branch = explorations.get_branch(request, pk)
        serializer = TurnRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limits.check_generation_rate(request)
        text = serializer.validated_data["text"]
        reply_to = answered_later.reply_channel(request)
        if reply_to:
            pushed = explorations.push_step(branch, "turn", None, text, reply_to)
            return answered_later.answer_later("turns", branch.pk, pushed)
        steps = explorations.add_turn(branch, text)
        return Response(_turns_body(steps, branch), status=status.HTTP_201_CREATED)

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


def _steps_body(steps, finish_reason: str) -> dict:
    return {"steps": StepSerializer(steps, many=True).data, "finish_reason": finish_reason or None}


def _turns_body(steps, branch: Branch) -> dict:
    return {
        "steps": StepSerializer(steps, many=True).data,
        "turns": [turn.to_dict() for turn in explorations.conversation_of(branch)],
    }


def _saved_steps(event: dict) -> list[Step]:
    return list(Step.objects.filter(pk__in=event["result"]["step_ids"]).order_by("index"))


@answered_later.finisher("steps")
def _steps_answered(event: dict) -> tuple[int, dict]:
    """A pushed API step's answer: the same body as a step waited for."""
    return 201, _steps_body(_saved_steps(event), event["result"]["finish_reason"])


@answered_later.finisher("turns")
def _turns_answered(event: dict) -> tuple[int, dict]:
    branch = Branch.objects.select_related("exploration").get(pk=event["branch"])
    return 201, _turns_body(_saved_steps(event), branch)
