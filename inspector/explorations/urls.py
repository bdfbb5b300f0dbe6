"""Exploration pages: the list, one exploration, its branches and their verbs (step, undo,
generate, stop, fork), the next-token panel and a step's alternatives."""

from django.urls import path

from inspector.explorations import branch_views as branch
from inspector.explorations import next_views as nexts
from inspector.explorations import views as explore

urlpatterns = [
    path("explore/", explore.exploration_list, name="explorations"),
    path("explore/new/", explore.exploration_create, name="exploration-create"),
    path("explore/example/<slug:key>/", explore.example_start, name="example-start"),
    path("explore/<uuid:exploration_id>/", explore.exploration_page, name="exploration"),
    path(
        "explore/<uuid:exploration_id>/rename/",
        explore.exploration_rename,
        name="exploration-rename",
    ),
    path(
        "explore/<uuid:exploration_id>/delete/",
        explore.exploration_delete,
        name="exploration-delete",
    ),
    path("explore/<uuid:exploration_id>/compare/", explore.branch_compare, name="branch-compare"),
    path("explore/<uuid:exploration_id>/prompt/", explore.prompt_tokens, name="prompt-tokens"),
    path("branches/<uuid:branch_id>/step/", branch.branch_step, name="branch-step"),
    path("branches/<uuid:branch_id>/turn/", branch.branch_turn, name="branch-turn"),
    path("branches/<uuid:branch_id>/undo/", branch.branch_undo, name="branch-undo"),
    path("branches/<uuid:branch_id>/generate/", branch.branch_generate, name="branch-generate"),
    path("branches/<uuid:branch_id>/stop/", branch.branch_stop, name="branch-stop"),
    path("branches/<uuid:branch_id>/fork/", branch.branch_fork, name="branch-fork"),
    path("branches/<uuid:branch_id>/rename/", branch.branch_rename, name="branch-rename"),
    path("branches/<uuid:branch_id>/delete/", branch.branch_delete, name="branch-delete"),
    path("branches/<uuid:branch_id>/next/", nexts.branch_next, name="branch-next"),
    path("branches/<uuid:branch_id>/view/", branch.branch_view, name="branch-view"),
    path("branches/<uuid:branch_id>/tree/", branch.branch_tree, name="branch-tree"),
    path("branches/<uuid:branch_id>/params/", nexts.exploration_params, name="branch-params"),
    path(
        "branches/<uuid:branch_id>/steps/<int:index>/",
        nexts.step_alternatives,
        name="step-alternatives",
    ),
]
