"""manage.py seed_demo: the demo accounts and lesson, on an empty database only."""

from django.conf import settings
from django.core.management.base import BaseCommand

from inspector.demo import seed_demo


class Command(BaseCommand):
    help = (
        "On an empty database (no users), create a demo instructor, student and admin (their "
        "passwords are printed) and a published demo lesson. Does nothing otherwise, or when "
        "TOKENLENS_DEMO is false."
    )

    def handle(self, *args, **options):
        if not settings.TOKENLENS_DEMO:
            return
        accounts = seed_demo()
        if accounts is None:
            return
        self.stdout.write(self.style.SUCCESS("Demo accounts (sign in at /accounts/login/):"))
        for account in accounts:
            self.stdout.write(
                f"  {account.role:<10} username {account.username:<10} password {account.password}"
            )
        self.stdout.write(
            "  Keep these; `python manage.py changepassword <username>` sets a new one.\n"
            "  A published demo lesson is under /lessons/."
        )
