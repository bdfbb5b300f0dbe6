"""REST API for share links, their review and the activity log (the same use-cases as the
pages: inspector.sharing.services). Errors are {"error": {"field": ..., "message": ...}}."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from inspector.accounts.access import user_of
from inspector.api.fields import StrictCharField
from inspector.api.schema import ERRORS, documented
from inspector.errors import ServiceError
from inspector.explorations import services as explorations
from inspector.models import AuditEvent, ShareLink
from inspector.sharing import services as sharing


class ShareLinkSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="The absolute address that opens it")
    exploration_title = serializers.CharField(source="exploration", read_only=True)
    reviewed_by = serializers.CharField(
        source="reviewed_by.get_username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = ShareLink
        fields = [
            "id",
            "token",
            "url",
            "status",
            "reason",
            "exploration",
            "exploration_title",
            "created_at",
            "reviewed_by",
            "reviewed_at",
            "revoked_at",
        ]
        read_only_fields = fields

    def get_url(self, link: ShareLink) -> str:
        return sharing.share_url(self.context["request"], link)


class ReviewSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "hide"])
    reason = StrictCharField(
        required=False, allow_blank=True, help_text="Required to hide; its owner reads it"
    )


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "summary",
            "detail",
        ]
        read_only_fields = fields


class ActivityPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AuditEventSerializer(many=True)


class ActivityQuerySerializer(serializers.Serializer):
    """The activity log's filter; a CharField refuses what the database cannot compare (NUL)."""

    action = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class ActivityPagination(PageNumberPagination):
    page_size = 50


def _shown(request, link: ShareLink, code: int = status.HTTP_200_OK) -> Response:
    return Response(ShareLinkSerializer(link, context={"request": request}).data, status=code)


def _require_staff(request) -> None:
    user = user_of(request)
    if user is None or not user.is_staff:
        raise ServiceError(sharing.ADMINS_ONLY, field="share", status=403)


@extend_schema(
    request=None,
    responses={200: ShareLinkSerializer, 201: ShareLinkSerializer, **ERRORS},
    description="Share the exploration as a read-only link (owner only). A new link waits for "
    "review (201); the link already in force is returned as it is (200).",
)
@api_view(["POST"])
def share(request, exploration_id):
    exploration = explorations.get_exploration(request, exploration_id, need="own")
    existed = exploration.active_share is not None
    link = sharing.share(exploration, request)
    return _shown(request, link, status.HTTP_200_OK if existed else status.HTTP_201_CREATED)


@documented(None, None, status=204, description="Revoke the link (owner only).")
@api_view(["DELETE"])
def revoke(request, pk):
    sharing.revoke(sharing.get_link(request, pk, need="own"), request)
    return Response(status=status.HTTP_204_NO_CONTENT)


@documented(
    None,
    ShareLinkSerializer(many=True),
    description="Admins: the review queue (links in force, those waiting first). Others: the "
    "links of their own explorations, revoked ones included.",
)
@api_view(["GET"])
def links(request):
    user = user_of(request)
    found = sharing.review_queue() if user and user.is_staff else sharing.links_of(request)
    return Response(ShareLinkSerializer(found, many=True, context={"request": request}).data)


@documented(
    ReviewSerializer,
    ShareLinkSerializer,
    description="Admins only: approve the link, or hide it with a reason its owner reads.",
)
@api_view(["POST"])
def review(request, pk):
    _require_staff(request)
    serializer = ReviewSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    link = sharing.get_link(request, pk, need="review")
    if serializer.validated_data["decision"] == "approve":
        sharing.approve(link, request)
    else:
        sharing.hide(link, request, serializer.validated_data.get("reason", ""))
    return _shown(request, link)


@documented(
    None,
    ActivityPageSerializer,
    parameters=[
        OpenApiParameter("action", str, description="Only events of this action"),
        OpenApiParameter("page", int, description="Page number (50 events a page)"),
    ],
    description="Admins only: the activity log, newest first, 50 a page.",
)
@api_view(["GET"])
def activity(request):
    _require_staff(request)
    query = ActivityQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    events = AuditEvent.objects.all()
    if query.validated_data.get("action"):
        events = events.filter(action=query.validated_data["action"])
    paginator = ActivityPagination()
    page = paginator.paginate_queryset(events, request)
    return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)
