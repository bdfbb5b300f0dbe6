"""Live sessions of a lesson: the presenter's exploration page drives the followers' pages."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from inspector.models.explorations import Branch, Exploration
from inspector.models.lessons import Lesson, LessonItem

# No 0/O, 1/I/L: a code read aloud to a room is typed right the first time.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class LiveSession(models.Model):
    """One running (or ended) class session of a lesson, and the exact state followers see."""

    class Pacing(models.TextChoices):
        INSTRUCTOR = "instructor", "Instructor-paced: followers follow the presenter"
        STUDENT = "student", "Student-paced: free, the presenter's position marked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="live_sessions")
    code = models.CharField(max_length=CODE_LENGTH, default=new_code)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    presenter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    pacing = models.CharField(max_length=16, choices=Pacing.choices, default=Pacing.INSTRUCTOR)
    item = models.ForeignKey(LessonItem, null=True, on_delete=models.SET_NULL, related_name="+")
    exploration = models.ForeignKey(
        Exploration, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    branch = models.ForeignKey(Branch, null=True, on_delete=models.SET_NULL, related_name="+")
    panel = models.JSONField(default=dict, blank=True, help_text="Open panel and its choices")
    selection = models.JSONField(default=list, blank=True, help_text="Selected token indexes")
    preview = models.JSONField(default=dict, blank=True, help_text="The presenter's sliders")
    spotlight = models.ForeignKey(
        "LiveParticipant",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The participant whose own branch everyone sees now",
    )
    spotlight_names = models.BooleanField(default=False, help_text="Show the spotlit name")
    version = models.PositiveIntegerField(default=0, help_text="Bumped at every change")
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"], condition=Q(ended_at__isnull=True), name="one_running_code"
            )
        ]

    def __str__(self) -> str:
        return f"{self.lesson} live ({self.code})"

    @property
    def running(self) -> bool:
        return self.ended_at is None


class LiveParticipant(models.Model):
    """Someone who joined: a signed-in user or a visitor's browser, and where they are."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="participants")
    principal = models.CharField(max_length=80, help_text='"user:<id>" or the visitor key')
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=150)
    following = models.BooleanField(default=True)
    branch = models.ForeignKey(
        Branch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Their own branch, forked from the class's state when they broke away",
    )
    joined_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["joined_at"]
        constraints = [
            models.UniqueConstraint(fields=["session", "principal"], name="one_seat_each")
        ]

    def __str__(self) -> str:
        return self.name


class LiveEvent(models.Model):
    """The record: each change of what the class saw, in order (the presenter's path)."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="events")
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=32)
    data = models.JSONField(default=dict)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "version"]

    def __str__(self) -> str:
        return f"{self.version}: {self.kind}"


class LivePoll(models.Model):
    """ "What comes next?" asked of the class at one position of the class's branch; it closes
    when the presenter's next token there is saved."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="polls")
    branch = models.ForeignKey(Branch, null=True, on_delete=models.SET_NULL, related_name="+")
    position = models.PositiveIntegerField(help_text="The index of the token asked about")
    choices = models.JSONField(default=list, help_text="Candidate texts offered, shuffled")
    chosen = models.JSONField(null=True, blank=True, help_text="The token the model wrote")
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "opened_at"]

    def __str__(self) -> str:
        return f"poll at #{self.position}"

    @property
    def open(self) -> bool:
        return self.closed_at is None


class LivePollAnswer(models.Model):
    """One participant's answer (their last one counts)."""

    poll = models.ForeignKey(LivePoll, on_delete=models.CASCADE, related_name="answers")
    participant = models.ForeignKey(LiveParticipant, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=100)
    answered_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["poll", "participant"], name="one_answer_each")
        ]

    def __str__(self) -> str:
        return self.text
