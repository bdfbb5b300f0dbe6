"""Questions attached to lesson items and students' answers."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("inspector", "0011_conversation_turns"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="LessonQuestion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveIntegerField(default=0)),
                ("kind", models.CharField(choices=[("next_token", "Which token comes next?"), ("multiple_choice", "Multiple choice"), ("free_text", "Free text")], max_length=16)),
                ("text", models.TextField()),
                ("step_index", models.PositiveIntegerField(blank=True, help_text="The step of the main branch hidden until answered", null=True)),
                ("choices", models.JSONField(blank=True, default=list)),
                ("correct", models.JSONField(blank=True, default=list, help_text="Indexes of right choices")),
                ("recorded", models.JSONField(blank=True, help_text="next_token: the recorded token and its candidates", null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("item", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="questions", to="inspector.lessonitem")),
            ],
            options={
                "ordering": ["item", "position", "pk"],
            },
        ),
        migrations.CreateModel(
            name="QuestionAnswer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.TextField(help_text="What they answered (multiple choice: the picked texts)")),
                ("picked", models.JSONField(blank=True, default=list, help_text="Multiple choice: indexes")),
                ("correct", models.BooleanField(null=True)),
                ("answered_at", models.DateTimeField(auto_now_add=True)),
                ("fork", models.ForeignKey(blank=True, help_text="Their fork of the item; deleting it keeps the answer (one answer each)", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="question_answers", to="inspector.exploration")),
                ("question", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="answers", to="inspector.lessonquestion")),
                ("student", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="question_answers", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "ordering": ["question", "answered_at"],
                "constraints": [models.UniqueConstraint(fields=("question", "student"), name="one_answer_per_student")],
            },
        ),
    ]
