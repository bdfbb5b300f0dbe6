from django.urls import path
from rest_framework.routers import SimpleRouter

from inspector import api

router = SimpleRouter()
router.register("explorations", api.ExplorationViewSet, basename="exploration")
router.register("branches", api.BranchViewSet, basename="branch")

urlpatterns = [
    path("models/", api.models_list, name="api-models"),
    path("tokenize/", api.tokenize, name="api-tokenize"),
    path("distribution/", api.distribution, name="api-distribution"),
    path("attention/", api.attention, name="api-attention"),
    path("heads/", api.heads, name="api-heads"),
    path("embeddings/", api.embeddings, name="api-embeddings"),
    path("vocabulary/", api.vocabulary, name="api-vocabulary"),
    *router.urls,
]
