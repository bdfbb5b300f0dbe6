"""REST API v1's routes (/api/v1/), every feature's endpoints in one table."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from inspector.analysis import api as analysis_api
from inspector.analysis import job_api
from inspector.api.errors import not_found
from inspector.catalog import api as catalog_api
from inspector.explorations import api as exploration_api
from inspector.lessons import api as lesson_api
from inspector.lessons import question_api
from inspector.live import api as live_api
from inspector.sharing import api as share_api
from inspector.transfer import api as transfer_api

router = SimpleRouter(use_regex_path=False)
router.register("explorations", exploration_api.ExplorationViewSet, basename="exploration")
router.register("branches", exploration_api.BranchViewSet, basename="branch")
router.register("lessons", lesson_api.LessonViewSet, basename="lesson")

urlpatterns = [
    path("models/", catalog_api.models, name="api-models"),
    path("models/<str:key>/", catalog_api.model_detail, name="api-model"),
    path("tokenize/", analysis_api.tokenize, name="api-tokenize"),
    path("distribution/", analysis_api.distribution, name="api-distribution"),
    path("sampling/", analysis_api.sampling, name="api-sampling"),
    path("attention/", analysis_api.attention, name="api-attention"),
    path("attention/graph/", analysis_api.attention_graph, name="api-attention-graph"),
    path("heads/", analysis_api.heads, name="api-heads"),
    path("attribution/", analysis_api.attribution, name="api-attribution"),
    path("embeddings/", analysis_api.embeddings, name="api-embeddings"),
    path("vocabulary/", analysis_api.vocabulary, name="api-vocabulary"),
    path("logit-lens/", analysis_api.logit_lens, name="api-logit-lens"),
    path("jobs/", job_api.start, name="api-jobs"),
    path("jobs/<uuid:job_id>/", job_api.detail, name="api-job"),
    path("jobs/<uuid:job_id>/cancel/", job_api.cancel, name="api-job-cancel"),
    path("explorations/<uuid:exploration_id>/share/", share_api.share, name="api-share"),
    path("shares/", share_api.links, name="api-shares"),
    path("shares/<int:pk>/", share_api.revoke, name="api-share-revoke"),
    path("shares/<int:pk>/review/", share_api.review, name="api-share-review"),
    path("activity/", share_api.activity, name="api-activity"),
    path(
        "explorations/<uuid:exploration_id>/fork/",
        transfer_api.fork_exploration,
        name="api-exploration-fork",
    ),
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
    path("lessons/<uuid:lesson_id>/live/", live_api.start, name="api-live-start"),
    path("live/<uuid:session_id>/", live_api.detail, name="api-live"),
    path("live/<uuid:session_id>/state/", live_api.change, name="api-live-change"),
    path("live/<uuid:session_id>/end/", live_api.end, name="api-live-end"),
    path("live/<uuid:session_id>/present/", live_api.take_over, name="api-live-present"),
    path("live/<uuid:session_id>/spotlight/", live_api.spotlight, name="api-live-spotlight"),
    path("live/<uuid:session_id>/participants/", live_api.participants, name="api-live-people"),
    path(
        "lessons/<uuid:lesson_id>/items/<int:item_id>/questions/",
        question_api.item_questions,
        name="api-item-questions",
    ),
    path("questions/<int:question_id>/", question_api.question_detail, name="api-question"),
    path("questions/<int:question_id>/answer/", question_api.answer, name="api-question-answer"),
    path("questions/<int:question_id>/answers/", question_api.answers, name="api-question-answers"),
    path("questions/<int:question_id>/results/", question_api.results, name="api-question-results"),
    *router.urls,
    # Last: anything else under /api/v1/ answers the API's JSON 404.
    re_path(r"^(?P<path>[\s\S]*)$", not_found, name="api-not-found"),
]
