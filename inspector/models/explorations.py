"""Explorations, their tree of branches and each branch's steps."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models.fields.json import KT

if TYPE_CHECKING:
    from inspector.models.sharing import ShareLink


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
    forked_from_lesson = models.ForeignKey(
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

    def sequence(self, *, with_candidates: bool = True, only: tuple[str, ...] = ()) -> list[Step]:
        """Every step of this branch in order: inherited ones first, then its own.

        with_candidates=False leaves out the recorded top-N and parameters (the bulk of a
        row), for drawing the tokens; each step then carries its recorded entropies (bits,
        as text from the JSON) as entropy_bits and entropy_base_bits. `only`: just these
        fields (e.g. ("index", "token_id", "mode") for stepping)."""
        inherited = (
            self.parent.sequence(with_candidates=with_candidates, only=only)[: self.fork_index]
            if self.parent
            else []
        )
        own = self.steps.order_by("index")
        if only:
            own = own.only(*only)
        elif not with_candidates:  # the two entropies only, for the entropy line
            own = own.defer("distribution", "params").annotate(
                entropy_bits=KT("distribution__entropy"),
                entropy_base_bits=KT("distribution__entropy_base"),
            )
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
        TURN = "turn", "A user's turn"

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
    turn = models.JSONField(
        null=True,
        blank=True,
        help_text=(
            "On the first token of a user's turn: the text the person typed and why the reply "
            "before it ended (undoing the turn restores that)"
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["branch", "index"]
        constraints = [
            models.UniqueConstraint(fields=["branch", "index"], name="one_step_per_index")
        ]

    def __str__(self) -> str:
        return f"{self.index}: {self.text!r}"
