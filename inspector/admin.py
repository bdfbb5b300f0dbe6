"""The Django admin: explorations, jobs, share links (reviewed through inspector.sharing) and
the activity log, read-only where a change would bypass the use-cases."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm

from inspector.errors import ServiceError
from inspector.models import AuditEvent, Branch, Exploration, Job, ShareLink, Step
from inspector.sharing import services as sharing


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "model_key", "status", "created_at")
    list_filter = ("kind", "status", "model_key")
    search_fields = ("id", "model_key", "error_message")
    readonly_fields = ("created_at", "updated_at")


class BranchInline(admin.TabularInline):
    model = Branch
    fields = ("label", "parent", "fork_index", "finish_reason")
    readonly_fields = ("parent", "fork_index", "finish_reason")
    extra = 0
    show_change_link = True


@admin.register(Exploration)
class ExplorationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "model_key", "owner", "use_chat_template", "updated_at")
    list_filter = ("model_key", "use_chat_template", "created_at")
    search_fields = ("title", "prompt", "owner__username")
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = [BranchInline]


@admin.register(Branch)
class BranchAdmin(admin.ModelAdmin):
    list_display = ("label", "exploration", "parent", "fork_index", "finish_reason", "created_at")
    list_filter = ("finish_reason", "exploration__model_key")
    search_fields = ("label", "exploration__title", "exploration__prompt")
    raw_id_fields = ("exploration", "parent")


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ("branch", "index", "text", "mode", "p_final", "rank")
    list_filter = ("mode",)
    search_fields = ("text", "branch__label")
    raw_id_fields = ("branch",)


class ReviewActionForm(ActionForm):
    """The action bar, with the reason the "Hide" action needs (its owner reads it)."""

    reason = forms.CharField(
        required=False, max_length=sharing.REASON_MAX, label="Reason (to hide)"
    )


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    """Review through inspector.sharing.services, so every decision is checked and logged; the rows
    themselves are read-only here."""

    action_form = ReviewActionForm
    actions = ["approve_links", "hide_links"]
    list_display = ("exploration", "owner", "status", "created_at", "reviewed_by", "revoked_at")
    list_filter = ("status", ("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("exploration__title", "exploration__prompt", "created_by__username", "token")
    list_select_related = ("exploration__owner", "reviewed_by")
    readonly_fields = [field.name for field in ShareLink._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the activity log keeps pointing at the row

    @admin.display(description="owner", ordering="exploration__owner__username")
    def owner(self, link: ShareLink) -> str:
        return link.exploration.owner.get_username() if link.exploration.owner else "a visitor"

    @admin.action(description="Approve")
    def approve_links(self, request, queryset) -> None:
        self._review(request, queryset, lambda link: sharing.approve(link, request), "Approved")

    @admin.action(description="Hide (give a reason in the box)")
    def hide_links(self, request, queryset) -> None:
        try:
            reason = sharing.clean_reason(request.POST.get("reason"))
        except ServiceError as error:
            self.message_user(request, error.message, level=messages.ERROR)
            return
        self._review(request, queryset, lambda link: sharing.hide(link, request, reason), "Hid")

    def _review(self, request, queryset, decide, verb: str) -> None:
        done = 0
        for link in queryset.select_related("exploration"):
            try:
                decide(link)
                done += 1
            except ServiceError as error:
                self.message_user(request, f"{link}: {error.message}", level=messages.WARNING)
        if done:
            self.message_user(request, f"{verb} {done} link(s).", level=messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The activity log: read-only (nobody edits history)."""

    list_display = ("created_at", "actor_label", "action", "target_type", "target_id", "summary")
    list_filter = ("action", "target_type", "created_at")
    search_fields = ("actor_label", "summary", "target_id", "action")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
