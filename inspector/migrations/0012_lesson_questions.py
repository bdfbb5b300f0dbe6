"""Questions attached to lesson items and students' answers."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inspector", "0011_conversation_turns"),
    ]

    operations = []
