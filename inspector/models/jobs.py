"""Job: a piece of model work a page or a script asked for, its progress and its result."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Job(models.Model):
    """A piece of model work requested from a page: its progress and its result, kept.

    The worker writes the stage it is in (loading the model, converting GGUF, ...) and finally
    the result or a person-readable error; the page gets each change over its websocket and
    polls this row as a fallback.
    """

    class Kind(models.TextChoices):
        TOKENIZE = "tokenize", "Tokenize"
        HEADS = "heads", "Head clusters"
        ATTRIBUTION = "attribution", "Attribution"
        ADD_MODEL = "add_model", "Adding a model"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    model_key = models.CharField(max_length=200)
    params = models.JSONField(default=dict)
    stage = models.CharField(max_length=300, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_field = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    page_id = models.UUIDField(null=True, blank=True, db_index=True)
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.model_key} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)

    def claim(self) -> bool:
        """Move pending → running atomically; False if another worker already has it."""
        claimed = Job.objects.filter(pk=self.pk, status=self.Status.PENDING).update(
            status=self.Status.RUNNING
        )
        if claimed:
            self.status = self.Status.RUNNING
        return bool(claimed)

    def set_stage(self, stage: str) -> None:
        self.stage = stage[:300]
        Job.objects.filter(pk=self.pk).update(stage=self.stage)

    def finish(self, outcome: dict) -> None:
        """Store what worker.computations.compute returned: {"result": ...} or {"error": {...}}
        (not over a cancel that came first)."""
        if "error" in outcome:
            self.status = self.Status.FAILED
            self.error_field = outcome["error"].get("field", "")
            self.error_message = outcome["error"]["message"]
        else:
            self.status = self.Status.DONE
            self.result = outcome["result"]
        self.stage = ""
        fields = ("status", "result", "error_field", "error_message", "stage")
        Job.objects.filter(pk=self.pk).exclude(status=self.Status.CANCELLED).update(
            **{name: getattr(self, name) for name in fields}, updated_at=timezone.now()
        )

    def cancel(self) -> bool:
        """Pending or running → cancelled: a worker running it stops at its next progress report
        (worker.jobs) and goes back to other work. False when it had already finished."""
        cancelled = Job.objects.filter(
            pk=self.pk, status__in=(self.Status.PENDING, self.Status.RUNNING)
        ).update(status=self.Status.CANCELLED, stage="Cancelled", updated_at=timezone.now())
        self.refresh_from_db()
        return bool(cancelled)

    def cancel_asked(self) -> bool:
        return Job.objects.filter(pk=self.pk, status=self.Status.CANCELLED).exists()

    def fail(self, message: str, field: str = "") -> None:
        self.finish({"error": {"field": field, "message": message}})
