from django.contrib import admin

from inspector.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "model_key", "status", "created_at")
    list_filter = ("kind", "status", "model_key")
    search_fields = ("id", "model_key", "error_message")
    readonly_fields = ("created_at", "updated_at")
