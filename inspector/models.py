from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models


def new_link_token() -> str:
    """An unguessable link token (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


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

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

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
        return self.status in (self.Status.DONE, self.Status.FAILED)

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
        """Store what worker.tasks.compute returned: {"result": ...} or {"error": {...}}."""
        if "error" in outcome:
            self.status = self.Status.FAILED
            self.error_field = outcome["error"].get("field", "")
            self.error_message = outcome["error"]["message"]
        else:
            self.status = self.Status.DONE
            self.result = outcome["result"]
        self.stage = ""
        self.save()

    def fail(self, message: str, field: str = "") -> None:
        self.finish({"error": {"field": field, "message": message}})


class Exploration(models.Model):
    """A saved session with one model and one prompt: its settings and a tree of branches.

    Owned by a user, or by a browser session for visitors who are not signed in.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="explorations",
    )
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    title = models.CharField(max_length=200, blank=True)
    model_key = models.CharField(max_length=200)
    prompt = models.TextField()
    system_prompt = models.TextField(blank=True)
    use_chat_template = models.BooleanField(default=False)
    params = models.JSONField(default=dict, help_text="Sampling parameters, seed included")
    max_new_tokens = models.PositiveIntegerField(default=128)
    stop = models.JSONField(default=list, blank=True, help_text="Stop sequences")
    constraint = models.JSONField(null=True, blank=True)
    forked_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )
    lesson = models.ForeignKey(
        "Lesson",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="forks",
        help_text="The lesson this exploration was forked from (its instructor may read it)",
    )
    imported = models.BooleanField(
        default=False,
        help_text=(
            "Made from an imported file (or a fork of such): its recorded steps and "
            "distributions came from the file, not from this server's model"
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or self.prompt[:60]

    @property
    def active_share(self) -> ShareLink | None:
        """The share link in force (not revoked), hidden or not."""
        return self.share_links.filter(revoked_at__isnull=True).first()

    @property
    def root(self) -> Branch:
        return self.branches.get(parent__isnull=True)


class BranchQuerySet(models.QuerySet):
    def locked(self, branch_id) -> Branch:
        """The branch's row, locked until the end of the transaction (select_for_update): step,
        undo and fork on one branch take this lock, so they happen one after another."""
        return self.select_for_update().get(pk=branch_id)


class Branch(models.Model):
    """A line of generated tokens: its parent's first `fork_index` tokens, then its own steps."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    exploration = models.ForeignKey(Exploration, on_delete=models.CASCADE, related_name="branches")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    fork_index = models.PositiveIntegerField(default=0)
    label = models.CharField(max_length=100)
    finish_reason = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BranchQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "branches"

    FINISH_LABELS = {
        "eos": "the model ended its answer (end of sequence)",
        "stop_sequence": "a stop sequence appeared",
        "max_tokens": "the maximum number of new tokens was reached",
        "context_full": "the context window is full",
        "constraint_complete": "the constraint is complete",
    }

    def __str__(self) -> str:
        return self.label

    @property
    def finish_label(self) -> str:
        return self.FINISH_LABELS.get(self.finish_reason, self.finish_reason.replace("_", " "))

    def sequence(self, *, with_candidates: bool = True) -> list[Step]:
        """Every step of this branch in order: inherited ones first, then its own.

        with_candidates=False leaves out the recorded top-N and parameters (the bulk of a
        row), for drawing the tokens."""
        inherited = (
            self.parent.sequence(with_candidates=with_candidates)[: self.fork_index]
            if self.parent
            else []
        )
        own = self.steps.order_by("index")
        if not with_candidates:
            own = own.defer("distribution", "params")
        return inherited + list(own)

    def token_ids(self) -> list[int]:
        """The ids of every token of the branch, inherited ones first."""
        inherited = self.parent.token_ids()[: self.fork_index] if self.parent else []
        return inherited + list(self.steps.order_by("index").values_list("token_id", flat=True))

    @property
    def length(self) -> int:
        last = self.steps.order_by("-index").values_list("index", flat=True).first()
        return self.fork_index if last is None else last + 1


class Step(models.Model):
    """One token of a branch as it was chosen: how, its probabilities, the top-N candidates at
    that moment and the parameters in force. Revisiting shows this, never a recomputation."""

    class Mode(models.TextChoices):
        SAMPLED = "sampled", "Sampled"
        GREEDY = "greedy", "Greedy"
        FORCED = "forced", "Forced"

    branch = models.ForeignKey(Branch, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField(help_text="Position in the branch's whole completion")
    token_id = models.PositiveIntegerField()
    text = models.CharField(max_length=300, help_text="Display text, split characters joined")
    piece = models.JSONField(default=dict, help_text="special, pending, joins, bytes")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    p_base = models.FloatField()
    p_final = models.FloatField()
    rank = models.PositiveIntegerField()
    distribution = models.JSONField(help_text="Top-N candidates, entropies and kept mass")
    params = models.JSONField(default=dict)
    elapsed_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["branch", "index"]
        constraints = [
            models.UniqueConstraint(fields=["branch", "index"], name="one_step_per_index")
        ]

    def __str__(self) -> str:
        return f"{self.index}: {self.text!r}"


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


class ShareLink(models.Model):
    """A read-only, unguessable link to an exploration; every new link waits for review.

    A hidden link stops resolving for everyone but the owner and admins; a revoked one for
    everyone. Revoked links are kept so the review log still points somewhere.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        APPROVED = "approved", "Approved"
        HIDDEN = "hidden", "Hidden"

    token = models.CharField(max_length=64, unique=True, default=new_link_token)
    exploration = models.ForeignKey(
        Exploration, on_delete=models.CASCADE, related_name="share_links"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True, help_text="Why it was hidden (shown to the owner)")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share of {self.exploration} ({self.status})"

    @property
    def resolves(self) -> bool:
        """Whether the link opens the exploration for a stranger."""
        return self.revoked_at is None and self.status != self.Status.HIDDEN


class AuditEvent(models.Model):
    """Who did what, when: shares, reviews, lessons, forks, imports, deletions, API tokens."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, help_text="Username, or the visitor's session")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, db_index=True)
    summary = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"
