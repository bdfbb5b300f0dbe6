"""REST API for lessons (the same use-cases as the pages: inspector.lessons.services).

Lessons the request may not open answer 404; changes by anyone but the lesson's instructor 403.
Errors are {"error": {"field": ..., "message": ...}}.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from inspector.accounts import access
from inspector.api.fields import StrictCharField
from inspector.api.parsers import JSONParser
from inspector.api.schema import documented
from inspector.lessons import files as lesson_files
from inspector.lessons import services as lessons
from inspector.models import Lesson, LessonItem
from inspector.transfer.api import sent_file


class LessonItemSerializer(serializers.ModelSerializer):
    exploration = serializers.UUIDField(source="exploration_id", read_only=True)
    title = serializers.CharField(source="exploration.title", read_only=True)
    prompt = serializers.CharField(source="exploration.prompt", read_only=True)
    model = serializers.CharField(source="exploration.model_key", read_only=True)

    class Meta:
        model = LessonItem
        fields = ["id", "position", "exploration", "title", "prompt", "model", "note"]
        fields += ["suggested_prompts"]
        read_only_fields = fields


class ItemChangeSerializer(serializers.ModelSerializer):
    """An item's note and prompts to try (checked and trimmed by inspector.lessons.services)."""

    note = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    suggested_prompts = serializers.ListField(
        child=StrictCharField(allow_blank=True), required=False
    )

    class Meta:
        model = LessonItem
        fields = ["note", "suggested_prompts"]


class ItemAddSerializer(ItemChangeSerializer):
    exploration = serializers.UUIDField(help_text="One of your own explorations")

    class Meta(ItemChangeSerializer.Meta):
        fields = ["exploration", "note", "suggested_prompts"]


class LessonSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    title = StrictCharField(required=False, allow_blank=True, help_text="1 to 200 chars")
    notes = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    goals = serializers.ListField(
        child=StrictCharField(allow_blank=True), required=False, help_text="At most 20"
    )
    items = LessonItemSerializer(many=True, read_only=True)
    link = serializers.SerializerMethodField(
        help_text="The share link (its instructor only, when the lesson is link-only)"
    )

    class Meta:
        model = Lesson
        fields = ["id", "owner", "title", "notes", "goals", "visibility", "link"]
        fields += ["created_at", "updated_at", "items"]
        read_only_fields = ["id", "owner", "link", "created_at", "updated_at", "items"]

    def get_link(self, lesson: Lesson) -> str | None:
        request = self.context.get("request")
        if request is None or lesson.visibility != Lesson.Visibility.LINK:
            return None
        if not access.lesson_access(request, lesson).change:
            return None
        return request.build_absolute_uri(reverse("lesson-link", args=[lesson.link_token]))


class OrderSerializer(serializers.Serializer):
    items = serializers.ListField(
        child=serializers.IntegerField(), help_text="Every item id of the lesson, in the new order"
    )


class ForkSerializer(serializers.Serializer):
    item = serializers.IntegerField(help_text="The lesson item whose exploration to copy")


class ForkResultSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The new exploration, in your workspace")
    url = serializers.URLField(help_text="Its page")


class LessonUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A lesson .json exported from TokenLens")


@extend_schema_view(
    list=documented(response=LessonSerializer(many=True)),
    retrieve=documented(response=LessonSerializer),
    create=documented(LessonSerializer, LessonSerializer, status=201),
    partial_update=documented(LessonSerializer, LessonSerializer),
    destroy=documented(response=None, status=204),
    items=documented(ItemAddSerializer, LessonItemSerializer, status=201),
    order=documented(OrderSerializer, LessonSerializer),
    import_file=documented(
        {"application/json": OpenApiTypes.OBJECT, "multipart/form-data": LessonUploadSerializer},
        LessonSerializer,
        status=201,
    ),
    fork=documented(ForkSerializer, ForkResultSerializer, status=201),
    export=documented(
        description="The lesson with each exploration's full export; each item's questions "
        "(with their right answers) for the lesson's instructors only"
    ),
)
class LessonViewSet(viewsets.ViewSet):
    """Lessons you may open: published ones, yours, link-only ones whose link you opened."""

    lookup_value_converter = "uuid"

    def _body(self, lesson: Lesson) -> dict:
        return LessonSerializer(lesson, context={"request": self.request}).data

    def list(self, request):
        found = access.viewable_lessons(request).select_related("owner")
        found = found.prefetch_related("items__exploration")
        return Response(LessonSerializer(found, many=True, context={"request": request}).data)

    def retrieve(self, request, pk=None):
        """A lesson with its items in order."""
        return Response(self._body(lessons.get_lesson(request, pk)))

    def create(self, request):
        """A new lesson (instructors only); it starts private unless `visibility` says."""
        lessons.require_instructor(request)
        serializer = LessonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lesson = lessons.create_lesson(request, dict(serializer.validated_data))
        return Response(self._body(lesson), status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        """Change a lesson's title, notes, goals or visibility (its instructor only)."""
        lesson = lessons.get_lesson(request, pk, "change")
        serializer = LessonSerializer(lesson, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        lessons.update_lesson(request, lesson, dict(serializer.validated_data))
        return Response(self._body(lesson))

    def destroy(self, request, pk=None):
        """Delete a lesson; its explorations, and the forks made from it, are kept."""
        lessons.delete_lesson(request, lessons.get_lesson(request, pk, "change"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def items(self, request, pk=None):
        """Add one of your explorations at the end of the lesson."""
        lesson = lessons.get_lesson(request, pk, "change")
        serializer = ItemAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = lessons.add_item(
            request,
            lesson,
            data["exploration"],
            data.get("note", ""),
            data.get("suggested_prompts"),
        )
        return Response(LessonItemSerializer(item).data, status=status.HTTP_201_CREATED)

    @documented(ItemChangeSerializer, LessonItemSerializer, methods=["PATCH"])
    @documented(response=None, status=204, methods=["DELETE"])
    @action(detail=True, methods=["patch", "delete"], url_path="items/<int:item_id>")
    def item(self, request, pk=None, item_id=None):
        """Change an item's note and prompts (PATCH), or take it out of the lesson (DELETE)."""
        lesson = lessons.get_lesson(request, pk, "change")
        item = lessons.get_item(lesson, item_id)
        if request.method == "DELETE":
            lessons.remove_item(item)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = ItemChangeSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        lessons.update_item(item, **serializer.validated_data)
        return Response(LessonItemSerializer(item).data)

    @action(detail=True, methods=["post"])
    def order(self, request, pk=None):
        """Put the items in a new order (name every item once)."""
        lesson = lessons.get_lesson(request, pk, "change")
        serializer = OrderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lessons.set_order(lesson, serializer.validated_data["items"])
        return Response(self._body(lesson))

    @action(detail=True, methods=["post"])
    def fork(self, request, pk=None):
        """Copy an item's exploration (every branch and step) into your workspace."""
        lesson = lessons.get_lesson(request, pk, "fork")
        serializer = ForkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = lessons.get_item(lesson, serializer.validated_data["item"])
        copy = lessons.fork_item(request, lesson, item)
        url = request.build_absolute_uri(reverse("exploration", args=[copy.pk]))
        return Response({"id": copy.pk, "url": url}, status=status.HTTP_201_CREATED)

    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[JSONParser, MultiPartParser],
    )
    def import_file(self, request):
        """A new private lesson from a lesson export (JSON body or multipart `file`), with a
        copy of each exploration; a bad file saves nothing and names where it is wrong."""
        lesson = lesson_files.import_lesson(request, sent_file(request))
        return Response(self._body(lesson), status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """The lesson as JSON, each item with its exploration's whole export and, for the
        lesson's instructors (owner and co-instructors), its questions with their answers."""
        lesson = lessons.get_lesson(request, pk)
        teaches = access.question_rights(request, lesson).read_answers
        return Response(lesson_files.export_lesson(lesson, with_questions=teaches))
