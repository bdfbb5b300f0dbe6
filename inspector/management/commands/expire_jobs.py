"""manage.py expire_jobs: delete jobs older than TOKENLENS_JOB_TTL_HOURS now."""

from django.conf import settings
from django.core.management.base import BaseCommand

from inspector.compute.expiry import expire_jobs


class Command(BaseCommand):
    help = (
        "Delete jobs (tokenize, head clusters, attribution) that nothing has happened to for "
        "TOKENLENS_JOB_TTL_HOURS: finished that long ago, or abandoned by their worker. "
        "Safe to run from cron at any time."
    )

    def handle(self, *args, **options):
        deleted = expire_jobs()
        hours = settings.TOKENLENS_JOB_TTL_HOURS
        self.stdout.write(f"Deleted {deleted} job(s) unchanged for over {hours} h")
