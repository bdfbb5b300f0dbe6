from django.urls import path

from inspector import views

urlpatterns = [
    path("", views.home, name="home"),
    path("tokenize/", views.tokenize, name="tokenize"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job"),
    path("healthz", views.healthz, name="healthz"),
]
