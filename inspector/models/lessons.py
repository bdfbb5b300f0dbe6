"""Lessons: an instructor's ordered explorations with notes, goals and suggested prompts."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from inspector.models.explorations import Exploration
from inspector.models.sharing import new_link_token


class Lesson(models.Model):
    """An instructor's ordered set of explorations with Markdown notes and learning goals."""

    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private: only you"
        LINK = "link", "Link only: anyone with the link"
        PUBLISHED = "published", "Published: listed for everyone"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lessons"
    )
    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True, help_text="Markdown; raw HTML is shown as text")
    goals = models.JSONField(default=list, blank=True, help_text="Learning goals, one per item")
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    link_token = models.CharField(max_length=64, unique=True, default=new_link_token)
    co_instructors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="co_taught_lessons",
        help_text="Instructors who may present this lesson live too",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title


class LessonItem(models.Model):
    """One exploration of a lesson, in its place, with the instructor's note and prompts to try."""

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="items")
    exploration = models.ForeignKey(
        Exploration, on_delete=models.CASCADE, related_name="lesson_items"
    )
    position = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True, help_text="Markdown")
    suggested_prompts = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["lesson", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.lesson}: {self.exploration}"
