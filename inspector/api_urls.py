from django.urls import path
from rest_framework.routers import SimpleRouter

from inspector import api, job_api

router = SimpleRouter()
router.register("explorations", api.ExplorationViewSet, basename="exploration")
router.register("branches", api.BranchViewSet, basename="branch")

urlpatterns = [
    path("models/", api.models_list, name="api-models"),
    path("tokenize/", api.tokenize, name="api-tokenize"),
    path("distribution/", api.distribution, name="api-distribution"),
    path("attention/", api.attention, name="api-attention"),
    path("heads/", api.heads, name="api-heads"),
    path("attribution/", api.attribution, name="api-attribution"),
    path("embeddings/", api.embeddings, name="api-embeddings"),
    path("vocabulary/", api.vocabulary, name="api-vocabulary"),
    path("logit-lens/", api.logit_lens, name="api-logit-lens"),
    path("jobs/", job_api.start, name="api-jobs"),
    path("jobs/<uuid:job_id>/", job_api.detail, name="api-job"),
    *router.urls,
]
