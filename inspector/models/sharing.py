"""Share links (read-only, reviewed) and the unguessable tokens of links."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from inspector.models.explorations import Exploration


def new_link_token() -> str:
    """An unguessable link token (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


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
