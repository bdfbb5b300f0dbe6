"""The Models page, adding a model and following it, removing one (routes of the catalog)."""

from django.urls import path

from inspector.catalog import views

urlpatterns = [
    path("models/", views.models_page, name="models"),
    path("models/add/", views.add_model, name="model-add"),
    path("models/jobs/<uuid:job_id>/", views.add_job, name="model-job"),
    path("models/<str:key>/remove/", views.remove_model, name="model-remove"),
]
