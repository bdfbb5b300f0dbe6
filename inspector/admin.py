from django.contrib import admin

from inspector.models import Branch, Exploration, Job, Step


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
