"""REST API of live sessions (the same use-cases as the pages: inspector.live.services).

The lesson's instructors start, steer and end a session; anyone who joined it reads its state.
Errors are {"error": {"field": ..., "message": ...}}.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from inspector.api.schema import documented
from inspector.live import reading
from inspector.live import services as live
from inspector.models import LiveSession


class StartSerializer(serializers.Serializer):
    pacing = serializers.ChoiceField(
        choices=LiveSession.Pacing.choices, default=LiveSession.Pacing.INSTRUCTOR
    )


class ChangeSerializer(serializers.Serializer):
    """What the presenter's page changed; a field left out stays as it is."""

    item = serializers.IntegerField(required=False, help_text="A lesson item's id")
    branch = serializers.UUIDField(required=False, help_text="A branch of a lesson exploration")
    panel = serializers.JSONField(required=False, help_text='{"name": …, "choices": {…}}')
    selection = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False)
    preview = serializers.JSONField(required=False, help_text="The sliders' values")
    pacing = serializers.ChoiceField(choices=LiveSession.Pacing.choices, required=False)


@documented(StartSerializer, status=201, summary="Start (or find) the lesson's live session")
@api_view(["POST"])
def start(request, lesson_id):
    serializer = StartSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    session = live.start(request, lesson_id, serializer.validated_data["pacing"])
    return Response(_contract(request, session), status=status.HTTP_201_CREATED)


@documented(summary="A live session's exact current state, in one snapshot")
@api_view(["GET"])
def detail(request, session_id):
    return Response(_contract(request, live.get_session(request, session_id)))


@documented(ChangeSerializer, summary="The presenter changes what the class sees")
@api_view(["POST"])
def change(request, session_id):
    session = live.get_session(request, session_id, "present")
    serializer = ChangeSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    changes = {key: value for key, value in request.data.items() if key in serializer.fields}
    return Response(_contract(request, live.change(request, session, changes)))


class SpotlightSerializer(serializers.Serializer):
    participant = serializers.IntegerField(allow_null=True, help_text="None: nobody's")
    names = serializers.BooleanField(default=False, help_text="Show the participant's name")


@documented(SpotlightSerializer, summary="Show one participant's own branch to everyone")
@api_view(["POST"])
def spotlight(request, session_id):
    session = live.get_session(request, session_id, "present")
    serializer = SpotlightSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    return Response(_contract(request, live.spotlight(request, session, **data)))


def _presenter_verb(verb, summary: str):
    """A POST that applies one of the presenter's verbs (take over, end) to the session."""

    def view(request, session_id):
        session = verb(request, live.get_session(request, session_id, "present"))
        return Response(_contract(request, session))

    view.__name__ = verb.__name__
    return documented(summary=summary)(api_view(["POST"])(view))


take_over = _presenter_verb(
    live.take_over, "Take over presenting (the lesson's instructors; one presenter at a time)"
)
end = _presenter_verb(live.end, "End a live session (its record stays)")


@documented(response=OpenApiTypes.OBJECT, summary="Who follows, who broke away, and where")
@api_view(["GET"])
def participants(request, session_id):
    session = live.get_session(request, session_id, "present")
    return Response({"participants": reading.class_view(session)})


def _contract(request, session: LiveSession) -> dict:
    state = reading.snapshot(session)
    state["join_url"] = request.build_absolute_uri(state["join_url"])
    return state
