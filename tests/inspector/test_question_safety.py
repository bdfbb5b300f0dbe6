"""Lesson questions that must not give their answers away or lose them: a reader's export, the
lesson page's links while text is hidden, an answer outliving its fork, a stage question read
from the recording, the edit and answers pages' queries; and answers racing a change, a delete
and other students (real threads, against PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from inspector.lessons import services as lesson_services
from inspector.models import Exploration, Lesson, LessonQuestion, QuestionAnswer
from tests.conftest import client_for, make_person, require_env
from tests.inspector.makers import browser, make_exploration, make_lesson

STAGES = ["temperature", "top-k", "top-p", "none: it is kept"]


pytestmark = pytest.mark.usefixtures("no_rate_limit")


@pytest.fixture
def item(published_item):
    return published_item


def _ask(api, item, **body):
    url = f"/api/v1/lessons/{item.lesson_id}/items/{item.pk}/questions/"
    return api.post(url, body, "json")


def _next_token(api, item, index=1) -> dict:
    asked = _ask(api, item, kind="next_token", text="Which token comes next?", step_index=index)
    assert asked.status_code == 201, asked.content
    return asked.json()


def _multiple_choice(api, item) -> dict:
    body = {"kind": "multiple_choice", "text": "Which?", "choices": STAGES, "correct": [1]}
    asked = _ask(api, item, **body)
    assert asked.status_code == 201, asked.content
    return asked.json()


# --- what a reader may not learn before answering ---------------------------------------------


@pytest.mark.django_db
def test_only_the_lessons_instructors_export_its_questions(instructor, student, item):
    teacher = client_for(instructor)
    _next_token(teacher, item)
    _multiple_choice(teacher, item)
    co_instructor = make_person("cora", "Instructor")
    item.lesson.co_instructors.add(co_instructor)
    url = f"/api/v1/lessons/{item.lesson_id}/export/"
    for person in (instructor, co_instructor):
        questions = client_for(person).get(url).json()["items"][0]["questions"]
        assert [q["correct"] for q in questions] == [[], [1]]
        assert questions[0]["step_index"] == 1
    read = client_for(student).get(url)
    assert read.status_code == 200
    assert all("questions" not in exported for exported in read.json()["items"])
    assert "correct" not in read.content.decode()


@pytest.mark.django_db
def test_the_lesson_page_offers_no_way_to_the_exploration_while_text_is_hidden(
    instructor, student, item
):
    asked = _next_token(client_for(instructor), item)
    page = browser(student)
    link = f'href="/explore/{item.exploration_id}/"'
    before = page.get(f"/lessons/{item.lesson_id}/").content.decode()
    assert link not in before and 'data-action="fork-item"' not in before
    assert 'data-testid="open-after-answering"' in before
    url = f"/lessons/{item.lesson_id}/questions/{asked['id']}/answer/"
    assert page.post(url, {"text": "x"}).status_code == 302
    after = page.get(f"/lessons/{item.lesson_id}/").content.decode()
    assert link in after and 'data-action="fork-item"' in after
    assert 'data-testid="open-after-answering"' not in after
    teacher = browser(instructor).get(f"/lessons/{item.lesson_id}/").content.decode()
    assert link in teacher


# --- an answer outlives its fork --------------------------------------------------------------


@pytest.mark.django_db
def test_deleting_the_fork_keeps_the_answer_and_a_second_answer_is_refused(
    instructor, student, item
):
    asked = _next_token(client_for(instructor), item)
    api = client_for(student)
    url = f"/api/v1/questions/{asked['id']}/answer/"
    fork = api.post(url, {"text": "first"}, "json").json()["fork"]
    assert api.delete(f"/api/v1/explorations/{fork}/").status_code == 204
    assert not Exploration.objects.filter(pk=fork).exists()
    kept = QuestionAnswer.objects.get()
    assert kept.text == "first" and kept.fork_id is None
    again = api.post(url, {"text": "second"}, "json")
    assert again.status_code == 409, again.content
    assert list(QuestionAnswer.objects.values_list("text", flat=True)) == ["first"]
    mine = api.get(f"/api/v1/questions/{asked['id']}/answers/").json()
    assert mine[0]["fork"] is None
    answers = browser(instructor).get(f"/lessons/{item.lesson_id}/answers/")
    assert answers.status_code == 200 and "their fork was deleted" in answers.content.decode()


# --- "which stage removes this token?" read from the recording --------------------------------


def _other_candidate(item, index=1) -> dict:
    """A recorded candidate of the step that greedy decoding did not pick (temperature 0 keeps
    only the argmax: the others are removed by the temperature stage)."""
    step = item.exploration.root.sequence()[index]
    return next(t for t in step.distribution["tokens"] if t["id"] != step.token_id)


@pytest.mark.django_db
def test_a_stage_question_naming_a_token_takes_its_right_stage_from_the_recording(
    instructor, student, item
):
    other = _other_candidate(item)
    body = {"kind": "multiple_choice", "text": f"Which stage removes {other['text']!r}?"}
    body |= {"choices": STAGES, "step_index": 1, "token": other["text"]}
    asked = _ask(client_for(instructor), item, **body)
    assert asked.status_code == 201, asked.content
    assert asked.json()["expected"] == {"correct": [0]} and asked.json()["token"] == other["text"]
    question = LessonQuestion.objects.get()
    assert question.recorded["removed_by"] == other["removed_by"] == "temperature"
    url = f"/api/v1/questions/{question.pk}/answer/"
    assert client_for(student).post(url, {"picked": [0]}, "json").json()["correct"] is True
    chosen = item.exploration.root.sequence()[1].text
    kept = _ask(client_for(instructor), item, **(body | {"token": chosen, "correct": [3]}))
    assert kept.status_code == 201, kept.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"correct": [1]}, "correct", "removed by temperature: mark “temperature”"),
        ({"choices": ["top-k", "top-p"]}, "choices", "add the choice “temperature”"),
        ({"token": "Zebra-no-such-token"}, "token", "no recorded candidate is"),
        ({"step_index": None}, "step_index", "names its step"),
        ({"kind": "free_text", "choices": []}, "token", "Only multiple-choice"),
    ],
)
def test_a_stage_question_that_disagrees_with_the_recording_is_refused(
    instructor, item, change, field, words
):
    other = _other_candidate(item)
    body = {"kind": "multiple_choice", "text": "Which stage?", "choices": STAGES}
    body |= {"step_index": 1, "token": other["text"], **change}
    refused = _ask(client_for(instructor), item, **body)
    assert refused.status_code == 400, refused.content
    error = refused.json()["error"]
    assert error["field"] == field and words in error["message"], error
    assert not LessonQuestion.objects.exists()


@pytest.mark.django_db
def test_the_edit_page_names_the_token_and_shows_the_recorded_stage(instructor, item):
    other = _other_candidate(item)
    teacher = browser(instructor)
    fields = {"kind": "multiple_choice", "text": "Which stage?", "step_index": 1}
    fields |= {"choices": "\n".join(STAGES), "token": other["text"]}
    data = {f"new{item.pk}-{name}": value for name, value in fields.items()}
    added = teacher.post(f"/lessons/{item.lesson_id}/items/{item.pk}/questions/", data)
    assert added.status_code == 302, added.content.decode()[-3000:]
    assert LessonQuestion.objects.get().correct == [0]
    edit = teacher.get(f"/lessons/{item.lesson_id}/edit/").content.decode()
    assert 'data-testid="recorded-stage"' in edit and "removed by <q>temperature</q>" in edit
    data[f"new{item.pk}-choices"] = "* top-k\n" + "\n".join(STAGES[:1] + STAGES[2:])
    wrong = teacher.post(f"/lessons/{item.lesson_id}/items/{item.pk}/questions/", data)
    assert wrong.status_code == 400 and "mark “temperature”" in wrong.content.decode()
    assert LessonQuestion.objects.count() == 1


# --- pages: a clear refusal, and queries that do not grow with the questions ------------------


@pytest.mark.django_db
def test_answering_another_lessons_question_on_this_lessons_page_is_a_404(instructor, item):
    """The other lesson's owner may not answer their own question: that 403 used to look for
    the question's item on this lesson's page and fail with a 500."""
    other_instructor = make_person("olga", "Instructor")
    theirs = make_exploration(client_for(other_instructor), "Once upon a time", "Story", 2)
    other_item = make_lesson(other_instructor, Lesson.Visibility.PUBLISHED, [theirs]).items.get()
    asked = _next_token(client_for(other_instructor), other_item, index=0)
    url = f"/lessons/{item.lesson_id}/questions/{asked['id']}/answer/"
    for headers in ({"HTTP_HX_REQUEST": "true"}, {}):
        refused = browser(other_instructor).post(url, {"text": "x"}, **headers)
        assert refused.status_code == 404, refused.content.decode()[-2000:]
    assert not QuestionAnswer.objects.exists()


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_the_edit_and_answers_pages_read_as_much_for_one_question_as_for_five(
    instructor, student, item
):
    teacher = client_for(instructor)
    pages = [f"/lessons/{item.lesson_id}/edit/", f"/lessons/{item.lesson_id}/answers/"]
    asked = [_next_token(teacher, item, index=0)]
    client_for(student).post(f"/api/v1/questions/{asked[0]['id']}/answer/", {"text": "x"}, "json")
    one = [_queries(browser(instructor), page) for page in pages]
    for index in (1, 2):
        asked.append(_next_token(teacher, item, index=index))
    asked += [_multiple_choice(teacher, item), _multiple_choice(teacher, item)]
    for question in asked[1:]:
        body = {"picked": [1]} if question["kind"] == "multiple_choice" else {"text": "x"}
        client_for(student).post(f"/api/v1/questions/{question['id']}/answer/", body, "json")
    five = [_queries(browser(instructor), page) for page in pages]
    assert five == one


# --- answers racing (real threads, PostgreSQL) ------------------------------------------------


class PausedFork:
    """Holds one student's answer inside its fork (after its checks, before it marks itself)
    until released, so another request can run in between."""

    def __init__(self, monkeypatch, student):
        self.forking, self.release = threading.Event(), threading.Event()
        original = lesson_services.fork_item

        def fork_item(request, lesson, item):
            if request.user.pk == student.pk:
                self.forking.set()
                assert self.release.wait(30)
            return original(request, lesson, item)

        monkeypatch.setattr(lesson_services, "fork_item", fork_item)

    def answer(self, user, url, body, into: list) -> threading.Thread:
        def run():
            client = client_for(user)
            client.raise_request_exception = False
            try:
                response = client.post(url, body, "json")
                into.append((response.status_code, response.content.decode()))
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread


def _race_setup():
    assert require_env("TOKENLENS_DATABASE_URL").startswith("postgres")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_answer_is_marked_against_the_question_as_it_is_when_saved(
    monkeypatch, instructor, student, item
):
    """The instructor fixes the right choice while a student's answer is being forked: the
    answer is marked against the fixed question, not the one it read first."""
    _race_setup()
    asked = _multiple_choice(client_for(instructor), item)
    paused, results = PausedFork(monkeypatch, student), []
    url = f"/api/v1/questions/{asked['id']}/answer/"
    thread = paused.answer(student, url, {"picked": [2]}, results)
    assert paused.forking.wait(30)
    fixed = client_for(instructor).patch(
        f"/api/v1/questions/{asked['id']}/", {"correct": [2]}, "json"
    )
    assert fixed.status_code == 200, fixed.content
    paused.release.set()
    thread.join(60)
    assert results and results[0][0] == 201, results
    assert QuestionAnswer.objects.get().correct is True


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_answer_racing_a_delete_is_told_the_question_is_gone(
    monkeypatch, instructor, student, item
):
    _race_setup()
    asked = _next_token(client_for(instructor), item)
    paused, results = PausedFork(monkeypatch, student), []
    url = f"/api/v1/questions/{asked['id']}/answer/"
    thread = paused.answer(student, url, {"text": "x"}, results)
    assert paused.forking.wait(30)
    assert client_for(instructor).delete(f"/api/v1/questions/{asked['id']}/").status_code == 204
    paused.release.set()
    thread.join(60)
    assert results and results[0][0] == 404 and "was deleted" in results[0][1], results
    assert not QuestionAnswer.objects.exists()
    assert not Exploration.objects.filter(owner=student).exists()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_other_students_answer_while_one_students_fork_is_made(
    monkeypatch, instructor, student, other_student, item
):
    """Answers do not wait for one another's forks: only one student's own answers queue."""
    _race_setup()
    asked = _next_token(client_for(instructor), item)
    paused, results = PausedFork(monkeypatch, student), []
    url = f"/api/v1/questions/{asked['id']}/answer/"
    slow = paused.answer(student, url, {"text": "x"}, results)
    assert paused.forking.wait(30)
    other = paused.answer(other_student, url, {"text": "y"}, results)
    other.join(20)
    answered_meanwhile = not other.is_alive() and list(results)
    paused.release.set()
    slow.join(60)
    other.join(60)
    assert answered_meanwhile and answered_meanwhile[0][0] == 201, answered_meanwhile
    assert sorted(status for status, _ in results) == [201, 201]
    assert QuestionAnswer.objects.count() == 2
