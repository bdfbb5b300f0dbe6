"""The pages, one URL module per feature (the API's routes are inspector.api_urls)."""

from django.urls import include, path

from inspector import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("", include("inspector.analysis.urls")),
    path("", include("inspector.accounts.urls")),
    path("", include("inspector.catalog.urls")),
    path("", include("inspector.lessons.urls")),
    path("", include("inspector.live.urls")),
    path("", include("inspector.sharing.urls")),
    path("", include("inspector.transfer.urls")),
    path("", include("inspector.explorations.urls")),
]
