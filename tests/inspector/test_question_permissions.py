"""Who may do what with a lesson's questions and answers: every role × every action, through the
REST API and the pages. Answers are readable by their author and the lesson's instructors
(owner and co-instructors) only. A refused action must leave everything as it was."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from inspector.models import Lesson, LessonItem, LessonQuestion, QuestionAnswer
from tests.conftest import client_for, make_person
from tests.inspector.makers import make_lesson

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_rate_limit")]
ROLES = ["owner", "co_instructor", "other_instructor", "student", "other_student", "admin"]
ROLES += ["visitor"]
ACTIONS = ["create", "edit", "delete", "answer", "read_answers", "read_distribution"]
ALLOWED = {
    "owner": {"create", "edit", "delete", "read_answers", "read_distribution"},
    "co_instructor": {"read_answers", "read_distribution"},
    "other_instructor": {"answer"},
    "student": {"answer", "read_answers"},  # their own answer
    "other_student": {"answer"},
    "admin": {"answer"},  # a reader like any other: students' answers are not theirs to read
    "visitor": set(),  # reads the published lesson; signs in to answer
}
SECRET = "Quixotic"  # the student's answer, to find in what others get


@dataclass
class World:
    lesson: Lesson
    item: LessonItem
    answered: LessonQuestion  # the student answered it
    unanswered: LessonQuestion
    clients: dict[str, APIClient]


@pytest.fixture
def world(instructor, student, other_student, admin_user, two_explorations) -> World:
    lesson = make_lesson(instructor, Lesson.Visibility.PUBLISHED, two_explorations[:1])
    co = make_person("cora", "Instructor")
    lesson.co_instructors.add(co)
    item = lesson.items.get()
    owner = client_for(instructor)
    url = f"/api/v1/lessons/{lesson.pk}/items/{item.pk}/questions/"
    ids = [
        owner.post(url, {"kind": "next_token", "text": text, "step_index": 1}, "json").json()["id"]
        for text in ("Which token comes next?", "And now?")
    ]
    answered, unanswered = LessonQuestion.objects.filter(pk__in=ids).order_by("pk")
    given = client_for(student).post(
        f"/api/v1/questions/{answered.pk}/answer/", {"text": SECRET}, "json"
    )
    assert given.status_code == 201, given.content
    clients = {
        "owner": owner,
        "co_instructor": client_for(co),
        "other_instructor": client_for(make_person("oscar", "Instructor")),
        "student": client_for(student),
        "other_student": client_for(other_student),
        "admin": client_for(admin_user),
        "visitor": APIClient(),
    }
    return World(lesson, item, answered, unanswered, clients)


def _state(world: World) -> dict:
    return {
        "questions": sorted(LessonQuestion.objects.values_list("pk", "text", "step_index")),
        "answers": sorted(QuestionAnswer.objects.values_list("question", "student", "text")),
    }


def _took_effect(action: str, before: dict, after: dict, response, world: World) -> bool:
    texts = {text for _, text, _ in after["questions"]}
    if action == "create":
        return len(after["questions"]) == len(before["questions"]) + 1
    if action == "edit":
        return "Reworded?" in texts
    if action == "delete":
        return len(after["questions"]) == len(before["questions"]) - 1
    if action == "answer":
        return len(after["answers"]) == len(before["answers"]) + 1
    body = response.content.decode()
    if action == "read_answers":
        return SECRET in body
    return "share_right" in body or 'data-testid="distribution"' in body


API = {
    "create": lambda c, w: c.post(
        f"/api/v1/lessons/{w.lesson.pk}/items/{w.item.pk}/questions/",
        {"kind": "free_text", "text": "Why?"},
    ),
    "edit": lambda c, w: c.patch(f"/api/v1/questions/{w.unanswered.pk}/", {"text": "Reworded?"}),
    "delete": lambda c, w: c.delete(f"/api/v1/questions/{w.unanswered.pk}/"),
    "answer": lambda c, w: c.post(f"/api/v1/questions/{w.unanswered.pk}/answer/", {"text": "x"}),
    "read_answers": lambda c, w: c.get(f"/api/v1/questions/{w.answered.pk}/answers/"),
    "read_distribution": lambda c, w: c.get(f"/api/v1/questions/{w.answered.pk}/results/"),
}


def _read_answers_page(client, world: World):
    """The class's answers page; for anyone it refuses, the lesson page (where an author
    reads their own answer)."""
    response = client.get(f"/lessons/{world.lesson.pk}/answers/")
    return response if response.status_code == 200 else client.get(f"/lessons/{world.lesson.pk}/")


PAGES = {
    "create": lambda c, w: c.post(
        f"/lessons/{w.lesson.pk}/items/{w.item.pk}/questions/",
        {f"new{w.item.pk}-kind": "free_text", f"new{w.item.pk}-text": "Why?"},
    ),
    "edit": lambda c, w: c.post(
        f"/lessons/{w.lesson.pk}/questions/{w.unanswered.pk}/",
        {
            f"q{w.unanswered.pk}-kind": "next_token",
            f"q{w.unanswered.pk}-text": "Reworded?",
            f"q{w.unanswered.pk}-step_index": "1",
        },
    ),
    "delete": lambda c, w: c.post(f"/lessons/{w.lesson.pk}/questions/{w.unanswered.pk}/delete/"),
    "answer": lambda c, w: c.post(
        f"/lessons/{w.lesson.pk}/questions/{w.unanswered.pk}/answer/", {"text": "x"}
    ),
    "read_answers": _read_answers_page,
    "read_distribution": lambda c, w: c.get(f"/lessons/{w.lesson.pk}/answers/"),
}
CELLS = [(role, action) for role in ROLES for action in ACTIONS]
READS = ("read_answers", "read_distribution")


@pytest.mark.parametrize(("role", "action"), CELLS)
def test_the_api_allows_exactly_what_the_role_may_do(world, role, action):
    client = world.clients[role]
    client.default_format = "json"
    before = _state(world)
    response = API[action](client, world)
    after = _state(world)
    if action in ALLOWED[role]:
        assert response.status_code in (200, 201, 204), response.content
        assert _took_effect(action, before, after, response, world)
        return
    assert before == after
    if action == "read_answers":  # anyone else's own answers only: none of the student's
        assert response.status_code == 200 and SECRET not in response.content.decode()
        return
    assert response.status_code == 403, (response.status_code, response.content)
    assert "message" in response.json()["error"]
    assert not _took_effect(action, before, after, response, world)


@pytest.mark.parametrize(("role", "action"), CELLS)
def test_the_pages_allow_exactly_what_the_role_may_do(world, role, action):
    client = world.clients[role]
    before = _state(world)
    response = PAGES[action](client, world)
    after = _state(world)
    if action in ALLOWED[role]:
        assert response.status_code in (200, 302), response.content[:500]
        if response.status_code == 302:
            assert "/accounts/login/" not in response["Location"]
        assert _took_effect(action, before, after, response, world)
        return
    assert before == after
    if action in READS:
        assert not _took_effect(action, before, after, response, world)
        return
    assert response.status_code in (302, 403), response.status_code
    if response.status_code == 302:  # a visitor is sent to sign in, nothing else
        assert response["Location"].startswith("/accounts/login/")


def test_a_private_lessons_questions_are_not_found_by_strangers(world, other_student):
    Lesson.objects.filter(pk=world.lesson.pk).update(visibility=Lesson.Visibility.PRIVATE)
    stranger = client_for(other_student)
    for response in (
        stranger.get(f"/api/v1/questions/{world.answered.pk}/"),
        stranger.get(f"/api/v1/questions/{world.answered.pk}/answers/"),
        stranger.post(f"/api/v1/questions/{world.unanswered.pk}/answer/", {"text": "x"}, "json"),
        stranger.get(f"/api/v1/lessons/{world.lesson.pk}/items/{world.item.pk}/questions/"),
    ):
        assert response.status_code == 404, response.content
    assert stranger.get(f"/lessons/{world.lesson.pk}/answers/").status_code == 404


def test_before_answering_nobody_but_the_instructors_is_told_the_answer(world):
    recorded = world.unanswered.recorded["text"]
    for role in ("student", "other_student", "admin", "visitor"):
        listed = world.clients[role].get(f"/api/v1/questions/{world.unanswered.pk}/").json()
        assert listed["expected"] is None, role
    owner = world.clients["owner"].get(f"/api/v1/questions/{world.unanswered.pk}/").json()
    assert owner["expected"]["text"] == recorded
