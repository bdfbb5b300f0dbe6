"""Share links and the review pages (routes added by the sharing feature)."""

from django.urls import path

from inspector.sharing import views

urlpatterns = [
    path("explore/<uuid:exploration_id>/share/", views.share_create, name="share-create"),
    path("shares/<int:pk>/revoke/", views.share_revoke, name="share-revoke"),
    path("s/<str:token>/", views.share_open, name="share-open"),
    path("review/", views.review, name="review"),
    path("review/<int:pk>/approve/", views.review_approve, name="review-approve"),
    path("review/<int:pk>/hide/", views.review_hide, name="review-hide"),
    path("review/activity/", views.activity, name="activity"),
]
