"""CatalogModel: a model an admin added to the catalog from the Models page or the API."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from engine.types import ModelSpec

# An entry still "adding" this long after it was asked for lost its worker (a crash mid-load):
# it is cleared so that the reference can be added again.
ADDING_GIVES_UP_AFTER = timedelta(hours=1)
ADDED_HERE = "added from the Models page"  # how a spec's description tells it was
CARD_FIELDS = (
    "architecture",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "hidden_size",
    "vocab_size",
    "context_length",
    "n_params",
    "has_chat_template",
)


class CatalogModelQuerySet(models.QuerySet):
    def ready(self) -> CatalogModelQuerySet:
        return self.filter(status=CatalogModel.Status.READY)

    def abandoned(self) -> CatalogModelQuerySet:
        """Entries whose adding will never finish: its job ended without marking them ready
        (a failure deletes the entry itself; this catches a worker that died), or it has
        been running for longer than ADDING_GIVES_UP_AFTER."""
        from inspector.models.jobs import Job

        finished = (Job.Status.DONE, Job.Status.FAILED, Job.Status.CANCELLED)
        return self.filter(status=CatalogModel.Status.ADDING).filter(
            Q(job__isnull=True)
            | Q(job__status__in=finished)
            | Q(created_at__lt=timezone.now() - ADDING_GIVES_UP_AFTER)
        )


class CatalogModel(models.Model):
    """A Hugging Face id or a local folder added to the catalog at run time (the packaged
    models and TOKENLENS_EXTRA_MODELS come from the code and the settings instead).

    It is "adding" while a worker resolves and loads it (its Job holds the progress), then
    "ready" with its card filled in from the loaded model; a failure deletes it, so only ready
    entries ever reach the catalog people choose from.
    """

    class Source(models.TextChoices):
        HUB = "hub", "Hugging Face hub"
        LOCAL = "local", "Local folder"

    class Status(models.TextChoices):
        ADDING = "adding", "Being added"
        READY = "ready", "Ready"
        REMOVING = "removing", "Being removed"  # only inside the transaction that removes it

    key = models.CharField(max_length=200, unique=True)
    reference = models.CharField(max_length=500, unique=True, help_text="Hub id or folder")
    label = models.CharField(max_length=200)
    source = models.CharField(max_length=8, choices=Source.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ADDING)
    architecture = models.CharField(max_length=100, blank=True)
    n_layers = models.PositiveIntegerField(null=True, blank=True)
    n_heads = models.PositiveIntegerField(null=True, blank=True)
    n_kv_heads = models.PositiveIntegerField(null=True, blank=True)
    hidden_size = models.PositiveIntegerField(null=True, blank=True)
    vocab_size = models.PositiveIntegerField(null=True, blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    n_params = models.BigIntegerField(null=True, blank=True)
    has_chat_template = models.BooleanField(null=True, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "inspector.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    objects = CatalogModelQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.label} ({self.reference}, {self.status})"

    @property
    def spec(self) -> ModelSpec:
        """Where a worker loads it from, as the engine's catalog describes models."""
        where = "Local folder" if self.source == self.Source.LOCAL else "Hugging Face model"
        return ModelSpec(
            key=self.key,
            label=self.label,
            source=self.source,
            location=self.reference,
            description=f"{where} {self.reference}, {ADDED_HERE}",
        )

    def card(self) -> dict:
        """The facts read from the loaded model (ModelInfo's names), once it is ready."""
        return {name: getattr(self, name) for name in CARD_FIELDS}

    def mark_ready(self, card: dict) -> bool:
        """Fill in the card and become ready, only if still being added (not removed
        meanwhile). False when the entry is gone."""
        values = {name: card[name] for name in CARD_FIELDS}
        updated = CatalogModel.objects.filter(pk=self.pk, status=self.Status.ADDING).update(
            **values, status=self.Status.READY, ready_at=timezone.now()
        )
        return bool(updated)
