# Exploration.lesson meant "forked from this lesson": the name now says so (same column data).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inspector", "0007_temperature_minimum"),
    ]

    operations = [
        migrations.RenameField(
            model_name="exploration",
            old_name="lesson",
            new_name="forked_from_lesson",
        ),
    ]
