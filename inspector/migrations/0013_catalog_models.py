"""Models added from the page: CatalogModel, and the Job kind that adds one."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("inspector", "0012_lesson_questions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="kind",
            field=models.CharField(
                choices=[
                    ("tokenize", "Tokenize"),
                    ("heads", "Head clusters"),
                    ("attribution", "Attribution"),
                    ("add_model", "Adding a model"),
                ],
                max_length=32,
            ),
        ),
        migrations.CreateModel(
            name="CatalogModel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=200, unique=True)),
                (
                    "reference",
                    models.CharField(help_text="Hub id or folder", max_length=500, unique=True),
                ),
                ("label", models.CharField(max_length=200)),
                (
                    "source",
                    models.CharField(
                        choices=[("hub", "Hugging Face hub"), ("local", "Local folder")],
                        max_length=8,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("adding", "Being added"),
                            ("ready", "Ready"),
                            ("removing", "Being removed"),
                        ],
                        default="adding",
                        max_length=8,
                    ),
                ),
                ("architecture", models.CharField(blank=True, max_length=100)),
                ("n_layers", models.PositiveIntegerField(blank=True, null=True)),
                ("n_heads", models.PositiveIntegerField(blank=True, null=True)),
                ("n_kv_heads", models.PositiveIntegerField(blank=True, null=True)),
                ("hidden_size", models.PositiveIntegerField(blank=True, null=True)),
                ("vocab_size", models.PositiveIntegerField(blank=True, null=True)),
                ("context_length", models.PositiveIntegerField(blank=True, null=True)),
                ("n_params", models.BigIntegerField(blank=True, null=True)),
                ("has_chat_template", models.BooleanField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("ready_at", models.DateTimeField(blank=True, null=True)),
                (
                    "added_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="inspector.job",
                    ),
                ),
            ],
            options={"ordering": ["created_at", "pk"]},
        ),
    ]
