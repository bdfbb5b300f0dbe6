"""Lesson questions through the pages: the instructor's forms on the edit page, a student's
answer on the lesson page (the text hidden from the step asked about until they answer), the
class's answers page; and two answers racing for one student (real threads)."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from inspector.models import Exploration, LessonQuestion, QuestionAnswer
from tests.conftest import client_for, require_env
from tests.inspector.makers import browser

pytestmark = pytest.mark.usefixtures("no_rate_limit")


@pytest.fixture
def item(published_item):
    return published_item


def _add(client, item, **fields):
    data = {f"new{item.pk}-{name}": value for name, value in fields.items()}
    return client.post(f"/lessons/{item.lesson_id}/items/{item.pk}/questions/", data)


@pytest.mark.django_db
def test_the_instructor_adds_questions_on_the_edit_page(instructor, item):
    teacher = browser(instructor)
    edit = teacher.get(f"/lessons/{item.lesson_id}/edit/").content.decode()
    assert 'data-testid="add-question-form"' in edit and "fill in the sampling stages" in edit
    added = _add(teacher, item, kind="next_token", text="Which token comes next?", step_index=1)
    assert added.status_code == 302 and added["Location"].endswith(f"#questions-{item.pk}")
    choices = "repetition penalty\n* top-k\ntop-p"
    _add(teacher, item, kind="multiple_choice", text="Which stage removes ' the'?", choices=choices)
    made = list(LessonQuestion.objects.order_by("position"))
    assert [q.kind for q in made] == ["next_token", "multiple_choice"]
    assert made[1].choices == ["repetition penalty", "top-k", "top-p"] and made[1].correct == [1]
    edit = teacher.get(f"/lessons/{item.lesson_id}/edit/").content.decode()
    assert edit.count('data-testid="edit-question"') == 2


@pytest.mark.django_db
def test_a_refused_question_shows_its_message_and_saves_nothing(instructor, item):
    teacher = browser(instructor)
    refused = _add(teacher, item, kind="next_token", text="Next?")
    assert refused.status_code == 400 and "Say which step" in refused.content.decode()
    htmx = teacher.post(
        f"/lessons/{item.lesson_id}/items/{item.pk}/questions/",
        {f"new{item.pk}-kind": "multiple_choice", f"new{item.pk}-text": "Which?"},
        HTTP_HX_REQUEST="true",
    )
    assert htmx.status_code == 422 and "Give 2 to 8 choices" in htmx.content.decode()
    assert not LessonQuestion.objects.exists()


@pytest.mark.django_db
def test_a_student_answers_before_the_step_is_revealed(instructor, student, item):
    _add(browser(instructor), item, kind="next_token", text="Which token comes next?", step_index=1)
    steps = item.exploration.root.sequence()
    page = browser(student)
    before = page.get(f"/lessons/{item.lesson_id}/").content.decode()
    assert 'data-testid="hidden-steps"' in before and "2 tokens hidden" in before
    assert f"#{steps[1].index} · " not in before and 'data-action="pick-token"' in before
    question = LessonQuestion.objects.get()
    answered = page.post(
        f"/lessons/{item.lesson_id}/questions/{question.pk}/answer/",
        {"text": steps[1].text},
        HTTP_HX_REQUEST="true",
    )
    html = answered.content.decode()
    assert answered.status_code == 200 and "Right." in html
    assert 'data-testid="hidden-steps"' not in html and 'data-testid="answer-fork"' in html
    again = page.post(
        f"/lessons/{item.lesson_id}/questions/{question.pk}/answer/", {"text": "other"}
    )
    assert again.status_code == 409 and "answered this question already" in again.content.decode()
    assert QuestionAnswer.objects.get().text == steps[1].text


@pytest.mark.django_db
def test_the_instructors_page_shows_the_distribution_and_each_answer(
    instructor, student, other_student, item
):
    _add(browser(instructor), item, kind="next_token", text="Which token comes next?", step_index=0)
    question = LessonQuestion.objects.get()
    recorded = question.recorded["text"]
    for person, text in ((student, recorded), (other_student, "Nope")):
        url = f"/lessons/{item.lesson_id}/questions/{question.pk}/answer/"
        assert browser(person).post(url, {"text": text}).status_code == 302
    html = browser(instructor).get(f"/lessons/{item.lesson_id}/answers/").content.decode()
    assert html.count('data-testid="distribution-row"') == 2
    assert html.count('data-testid="student-answer"') == 2
    assert '<strong data-testid="share-right">50' in html
    assert "stu" in html and "otto" in html


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_answers_racing_for_one_student_leave_one(instructor, student, item):
    """Two tabs of one student answer at the same moment: one answer and one fork are kept,
    the other tab is told it answered already (409). Against PostgreSQL, as tests/inspector/
    test_races.py (SQLite's shared in-memory test database refuses concurrent writers)."""
    assert require_env("TOKENLENS_DATABASE_URL").startswith("postgres")
    _add(browser(instructor), item, kind="next_token", text="Which token comes next?", step_index=1)
    question = LessonQuestion.objects.get()
    url = f"/api/v1/questions/{question.pk}/answer/"
    start = threading.Barrier(2)
    statuses: list[int] = []

    def answer(text: str) -> None:
        client = client_for(student)
        start.wait()
        try:
            statuses.append(client.post(url, {"text": text}, "json").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=answer, args=(text,)) for text in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [201, 409]
    assert QuestionAnswer.objects.filter(student=student).count() == 1
    assert Exploration.objects.filter(owner=student).count() == 1
