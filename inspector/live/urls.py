"""Live session pages."""

from django.urls import path

from inspector.live import views

urlpatterns = [
    path("live/", views.join_form, name="live"),
    path("live/<uuid:session_id>/end/", views.end, name="live-end"),
    path("live/<uuid:session_id>/present/", views.take_over, name="live-take-over"),
    path("live/<uuid:session_id>/poll/", views.poll_open, name="live-poll-open"),
    path("live/<uuid:session_id>/record/", views.record, name="live-record"),
    path("live/<str:code>/", views.follow, name="live-join"),
    path("live/<str:code>/answer/", views.poll_answer, name="live-poll-answer"),
    path("live/<str:code>/break-away/", views.break_away, name="live-break-away"),
    path("lessons/<uuid:lesson_id>/live/", views.start, name="live-start"),
]
