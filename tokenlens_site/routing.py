"""Websocket routes: a page's job updates and an exploration's branch changes."""

from django.urls import path

from inspector.explorations.consumers import ExplorationConsumer, PageConsumer

websocket_urlpatterns = [
    path("ws/pages/<uuid:page_id>/", PageConsumer.as_asgi()),
    path("ws/explorations/<uuid:exploration_id>/", ExplorationConsumer.as_asgi()),
]
