"""The app's configuration (label `inspector`)."""

from django.apps import AppConfig


class InspectorConfig(AppConfig):
    name = "inspector"
    verbose_name = "TokenLens inspector"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from inspector.accounts import services  # noqa: F401  (connects the sign-in handler)
        from inspector.live import polls, relay  # noqa: F401  (they hear of branch changes)
