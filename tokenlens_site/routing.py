from django.urls import path

from inspector.consumers import PageConsumer

websocket_urlpatterns = [
    path("ws/pages/<uuid:page_id>/", PageConsumer.as_asgi()),
]
