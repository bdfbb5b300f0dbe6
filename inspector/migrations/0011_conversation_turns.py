"""Conversations: a step may be a token of a user's turn, and a turn's first token keeps what
the person typed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("inspector", "0010_job_cancelled"),
    ]

    operations = [
        migrations.AddField(
            model_name="step",
            name="turn",
            field=models.JSONField(
                blank=True,
                help_text=(
                    "On the first token of a user's turn: the text the person typed and why "
                    "the reply before it ended (undoing the turn restores that)"
                ),
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="step",
            name="mode",
            field=models.CharField(
                choices=[
                    ("sampled", "Sampled"),
                    ("greedy", "Greedy"),
                    ("forced", "Forced"),
                    ("turn", "A user's turn"),
                ],
                max_length=16,
            ),
        ),
    ]
