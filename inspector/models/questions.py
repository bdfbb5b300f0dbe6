"""Questions an instructor attaches to a lesson item, and each student's one answer to each."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from inspector.models.explorations import Exploration
from inspector.models.lessons import LessonItem


class LessonQuestion(models.Model):
    """A question on one lesson item, asked before the item's step `step_index` is revealed
    (required for next_token, optional otherwise).

    For next_token the answer is the token the item's exploration recorded at `step_index` on
    its main branch, kept in `recorded` when the question is saved (so a later change to the
    exploration does not change what was right). `choices`: multiple choice's options, or
    next_token's recorded top candidates offered to pick from (shuffled once); `correct`: the
    indexes of multiple choice's right options. A multiple-choice question about the sampling
    stages may name a candidate token of its step (`recorded` = {"index", "token", "token_id",
    "removed_by"}): its right choice is then the stage that recorded step says removed it.
    Free text has no right answer."""

    class Kind(models.TextChoices):
        NEXT_TOKEN = "next_token", "Which token comes next?"
        MULTIPLE_CHOICE = "multiple_choice", "Multiple choice"
        FREE_TEXT = "free_text", "Free text"

    item = models.ForeignKey(LessonItem, on_delete=models.CASCADE, related_name="questions")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    text = models.TextField()
    step_index = models.PositiveIntegerField(
        null=True, blank=True, help_text="The step of the main branch hidden until answered"
    )
    choices = models.JSONField(default=list, blank=True)
    correct = models.JSONField(default=list, blank=True, help_text="Indexes of right choices")
    recorded = models.JSONField(
        null=True, blank=True, help_text="next_token: the recorded token and its candidates"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["item", "position", "pk"]

    def __str__(self) -> str:
        return self.text[:60]

    @property
    def token(self) -> str | None:
        """Multiple choice: the candidate token whose removing stage is the right choice."""
        if self.kind != self.Kind.MULTIPLE_CHOICE or not self.recorded:
            return None
        return self.recorded.get("token")


class QuestionAnswer(models.Model):
    """One student's answer to one question, kept with their fork of the item's exploration.
    `correct` is None for free text (the instructor reads those). The answer outlives the
    fork: deleting the fork must not let the student answer again after seeing the answer."""

    question = models.ForeignKey(LessonQuestion, on_delete=models.CASCADE, related_name="answers")
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="question_answers"
    )
    fork = models.ForeignKey(
        Exploration,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="question_answers",
        help_text="Their fork of the item; deleting it keeps the answer (one answer each)",
    )
    text = models.TextField(help_text="What they answered (multiple choice: the picked texts)")
    picked = models.JSONField(default=list, blank=True, help_text="Multiple choice: indexes")
    correct = models.BooleanField(null=True)
    answered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["question", "answered_at"]
        constraints = [
            models.UniqueConstraint(fields=["question", "student"], name="one_answer_per_student")
        ]

    def __str__(self) -> str:
        return self.text[:60]
