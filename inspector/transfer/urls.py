"""Pages that move explorations in and out: import, JSON export, steps as CSV, forking."""

from django.urls import path

from inspector.transfer import views

urlpatterns = [
    path("explore/import/", views.exploration_import, name="exploration-import"),
    path(
        "explore/<uuid:exploration_id>/export.json",
        views.exploration_export,
        name="exploration-export",
    ),
    path("explore/<uuid:exploration_id>/fork/", views.exploration_fork, name="exploration-fork"),
    path("branches/<uuid:branch_id>/steps.csv", views.branch_steps_csv, name="branch-steps-csv"),
]
