"""The demo people find on an empty database: an instructor, a student and an admin, and a
published lesson built from two real explorations (the model really steps them)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import override_settings

from inspector.accounts import access
from inspector.explorations import services as explorations
from inspector.models import Lesson, LessonItem

PEOPLE = (
    # username, role (group), staff
    ("instructor", access.INSTRUCTORS, False),
    ("student", access.STUDENTS, False),
    ("admin", None, True),
)

NOTES = """Every answer a language model writes is built **one token at a time**. At each step the
model gives every token of its vocabulary a probability; a *sampling rule* then picks one.

1. Open the first exploration and click a generated token: the *Alternatives* panel shows what
   else the model considered, with the probabilities it had **at that moment**.
2. The second branch starts where a less likely token was picked instead: compare the two.
3. Fork the exploration into your workspace and try the suggested prompts.
"""

GOALS = [
    "Say what a token is and find one word split into several tokens",
    "Read a next-token distribution: p_base, p_final, rank",
    "Explain how temperature and top-p change what gets sampled",
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str


def _as(user) -> SimpleNamespace:
    """A stand-in for a request by `user`: the use-cases only read .user (and .session)."""
    return SimpleNamespace(user=user, session={})


def create_people() -> list[DemoAccount]:
    accounts = []
    for username, group, staff in PEOPLE:
        password = secrets.token_urlsafe(9)
        user = User.objects.create_user(
            username, f"{username}@example.com", password, is_staff=staff, is_superuser=staff
        )
        if group:
            user.groups.add(Group.objects.get_or_create(name=group)[0])
        accounts.append(DemoAccount(username, password, group or "Admin"))
    return accounts


def _exploration(owner, title: str, prompt: str, params: dict):
    data = {
        "model_key": settings.TOKENLENS_DEFAULT_MODEL,
        "title": title,
        "prompt": prompt,
        "params": params,
        "max_new_tokens": 64,
    }
    return explorations.create_exploration(_as(owner), data)


def create_lesson(instructor) -> Lesson:
    """Two explorations stepped by the real model, then a published lesson holding them."""
    capital = _exploration(
        instructor, "Greedy, then a road not taken", "The capital of France is", {"seed": 1}
    )
    root = capital.root
    for _ in range(6):
        explorations.step(root, "greedy")
    second = root.sequence()[0].distribution["tokens"][1]  # the runner-up at the first token
    branch = explorations.fork(root, 0, second["id"])
    for _ in range(5):
        explorations.step(branch, "greedy")
    story = _exploration(
        instructor,
        "Sampling at temperature 1",
        "Once upon a time, in a small village,",
        {"temperature": 1.0, "top_p": 0.95, "seed": 7},
    )
    for _ in range(12):
        explorations.step(story.root, "sample")
    lesson = Lesson.objects.create(
        owner=instructor,
        title="How a language model picks the next word",
        notes=NOTES,
        goals=GOALS,
        visibility=Lesson.Visibility.PUBLISHED,
    )
    LessonItem.objects.create(
        lesson=lesson,
        exploration=capital,
        position=0,
        note="Greedy decoding always takes the most likely token. The second branch took the "
        "runner-up at the first step instead.",
        suggested_prompts=["The capital of Italy is", "The largest planet is"],
    )
    LessonItem.objects.create(
        lesson=lesson,
        exploration=story,
        position=1,
        note="Sampling draws from the distribution: step it again with the same seed and you "
        "get the same story; change the seed and it changes.",
        suggested_prompts=["Once upon a time, in a city of glass,", "The robot opened the door"],
    )
    return lesson


def seed_demo() -> list[DemoAccount] | None:
    """Create the demo on an empty database (no user at all); None if there is someone."""
    if User.objects.exists():
        return None
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True), transaction.atomic():
        accounts = create_people()
        create_lesson(User.objects.get(username="instructor"))
    return accounts
