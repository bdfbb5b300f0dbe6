"""Lesson pages (routes added by the lessons feature)."""

urlpatterns: list = []
