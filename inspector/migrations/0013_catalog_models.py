"""Models added from the page."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inspector", "0012_lesson_questions"),
    ]

    operations = []
