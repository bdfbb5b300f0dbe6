"""REST API v1 for the analyses: tokenization, the next-token distribution
and its sampling taken apart, attention (maps, and its strongest links as a graph), head
clusters, attribution, embeddings, the vocabulary and the logit lens. Each waits for a
worker's result (inspector.compute.services.compute_now)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from inspector.analysis.scope import cache_scope
from inspector.analysis.serializers import (
    AttentionGraphRequestSerializer,
    AttentionRequestSerializer,
    AttributionRequestSerializer,
    DistributionRequestSerializer,
    EmbeddingsRequestSerializer,
    HeadsRequestSerializer,
    LensRequestSerializer,
    SamplingRequestSerializer,
    SequenceRequestSerializer,
    VocabularyRequestSerializer,
)
from inspector.api.schema import documented
from inspector.compute import services


def _compute(request, serializer_class, kind: str) -> Response:
    """Validate the request, run the computation in a worker and wait for its result."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    # Cached model states are reused only within one person's own requests (see kvcache),
    # or a live class's when it asks about the text the class follows.
    params = {**serializer.validated_data}
    params["cache_scope"] = cache_scope(request, params)
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


@documented(AttentionGraphRequestSerializer)
@api_view(["POST"])
def attention_graph(request):
    """Only the strongest links of a layer range (top-k per query or above a threshold)."""
    return _compute(request, AttentionGraphRequestSerializer, "attention_graph")


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


@documented(SamplingRequestSerializer)
@api_view(["POST"])
def sampling(request):
    return _compute(request, SamplingRequestSerializer, "sampling")


@documented(LensRequestSerializer)
@api_view(["POST"])
def logit_lens(request):
    return _compute(request, LensRequestSerializer, "logit_lens")
