"""The tokens page (home), its form's target and a job's page."""

from django.urls import path

from inspector.analysis import views

urlpatterns = [
    path("", views.home, name="home"),
    path("tokenize/", views.tokenize, name="tokenize"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job"),
]
