"""Conversations: a step may be a user's turn."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inspector", "0010_job_cancelled"),
    ]

    operations = []
