from django.urls import path

from inspector import api

urlpatterns = [
    path("models/", api.models_list, name="api-models"),
    path("tokenize/", api.tokenize, name="api-tokenize"),
    path("distribution/", api.distribution, name="api-distribution"),
]
