"""Websocket routes: a page's job updates, an exploration's branch changes, a live class."""

from django.urls import path

from inspector.explorations.consumers import ExplorationConsumer, PageConsumer
from inspector.live.consumers import LiveConsumer

websocket_urlpatterns = [
    path("ws/pages/<uuid:page_id>/", PageConsumer.as_asgi()),
    path("ws/explorations/<uuid:exploration_id>/", ExplorationConsumer.as_asgi()),
    path("ws/live/<uuid:session_id>/", LiveConsumer.as_asgi()),
]
