from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from inspector import api, job_api, lesson_api, share_api, transfer_api

router = SimpleRouter(use_regex_path=False)
router.register("explorations", api.ExplorationViewSet, basename="exploration")
router.register("branches", api.BranchViewSet, basename="branch")
router.register("lessons", lesson_api.LessonViewSet, basename="lesson")

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
    path("explorations/<uuid:exploration_id>/share/", share_api.share, name="api-share"),
    path("shares/", share_api.links, name="api-shares"),
    path("shares/<int:pk>/", share_api.revoke, name="api-share-revoke"),
    path("shares/<int:pk>/review/", share_api.review, name="api-share-review"),
    path("activity/", share_api.activity, name="api-activity"),
    path(
        "explorations/import/",
        transfer_api.import_exploration,
        name="api-exploration-import",
    ),
    path(
        "explorations/<uuid:exploration_id>/export/",
        transfer_api.export_exploration,
        name="api-exploration-export",
    ),
    path(
        "branches/<uuid:branch_id>/steps.csv", transfer_api.steps_csv, name="api-branch-steps-csv"
    ),
    *router.urls,
    # Last: anything else under /api/v1/ answers the API's JSON 404.
    re_path(r"^(?P<path>[\s\S]*)$", api.not_found, name="api-not-found"),
]
