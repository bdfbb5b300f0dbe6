"""Lesson questions through the REST API: the instructor asks, students answer once before the
step is revealed, the instructors read the answers and the class's distribution (real users,
explorations stepped greedily by the real SmolLM2; tasks run inline)."""

from __future__ import annotations

import pytest

from inspector.models import AuditEvent, Exploration, Lesson, LessonQuestion, QuestionAnswer
from tests.conftest import client_for, make_person
from tests.inspector.makers import make_lesson

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_rate_limit")]
STAGES = ["repetition penalty", "temperature", "top-k", "top-p"]


@pytest.fixture
def lesson(instructor, two_explorations):
    return make_lesson(instructor, Lesson.Visibility.PUBLISHED, two_explorations)


@pytest.fixture
def item(lesson):
    return lesson.items.get(position=0)


def _questions_url(item) -> str:
    return f"/api/v1/lessons/{item.lesson_id}/items/{item.pk}/questions/"


def _ask(api, item, **body):
    response = api.post(_questions_url(item), body, "json")
    assert response.status_code == 201, response.content
    return response.json()


def _next_token(api, item, index=1):
    return _ask(api, item, kind="next_token", text="Which token comes next?", step_index=index)


def test_a_next_token_question_keeps_the_recorded_token_and_offers_candidates(instructor, item):
    body = _next_token(client_for(instructor), item)
    step = item.exploration.root.sequence()[1]
    assert body["expected"] == {"text": step.text, "token_id": step.token_id, "p_base": step.p_base}
    assert step.text in body["choices"] and 2 <= len(body["choices"]) <= 6
    question = LessonQuestion.objects.get()
    assert question.recorded["index"] == 1 and question.recorded["candidates"]
    assert AuditEvent.objects.filter(action="question.create").count() == 1


def test_a_student_sees_no_answer_before_answering_then_is_told(instructor, student, item):
    asked = _next_token(client_for(instructor), item)
    api = client_for(student)
    listed = api.get(_questions_url(item)).json()
    assert listed[0]["expected"] is None and listed[0]["your_answer"] is None
    recorded = item.exploration.root.sequence()[1].text
    wrong = next(text for text in asked["choices"] if text.strip() != recorded.strip())
    answered = api.post(f"/api/v1/questions/{asked['id']}/answer/", {"text": wrong}, "json")
    assert answered.status_code == 201, answered.content
    body = answered.json()
    assert body["correct"] is False and body["expected"]["text"] == recorded
    fork = Exploration.objects.get(pk=body["fork"])
    assert fork.owner == student and fork.forked_from == item.exploration
    assert fork.forked_from_lesson == item.lesson and body["fork_url"].endswith(f"/{fork.pk}/")
    listed = api.get(_questions_url(item)).json()
    assert listed[0]["your_answer"]["text"] == wrong and listed[0]["expected"]["text"] == recorded


def test_a_typed_token_is_right_whatever_its_surrounding_spaces(instructor, student, item):
    asked = _next_token(client_for(instructor), item, index=0)
    recorded = item.exploration.root.sequence()[0].text
    typed = f"  {recorded.strip()} "
    answered = client_for(student).post(
        f"/api/v1/questions/{asked['id']}/answer/", {"text": typed}, "json"
    )
    assert answered.status_code == 201 and answered.json()["correct"] is True


def test_a_second_answer_is_a_409_and_keeps_the_first(instructor, student, item):
    asked = _next_token(client_for(instructor), item)
    api = client_for(student)
    url = f"/api/v1/questions/{asked['id']}/answer/"
    assert api.post(url, {"text": "first"}, "json").status_code == 201
    again = api.post(url, {"text": "second"}, "json")
    assert again.status_code == 409
    assert "answered this question already" in again.json()["error"]["message"]
    assert list(QuestionAnswer.objects.values_list("text", flat=True)) == ["first"]


def test_answers_of_one_item_share_one_fork(instructor, student, item):
    teacher = client_for(instructor)
    first, second = _next_token(teacher, item, 0), _next_token(teacher, item, 1)
    api = client_for(student)
    forks = {
        api.post(f"/api/v1/questions/{q['id']}/answer/", {"text": "x"}, "json").json()["fork"]
        for q in (first, second)
    }
    assert len(forks) == 1 and Exploration.objects.filter(owner=student).count() == 1


def test_multiple_choice_with_two_right_choices(instructor, student, other_student, item):
    asked = _ask(
        client_for(instructor),
        item,
        kind="multiple_choice",
        text="Which stages can remove ' the'?",
        choices=STAGES,
        correct=[2, 3],
    )
    url = f"/api/v1/questions/{asked['id']}/answer/"
    right = client_for(student).post(url, {"picked": [3, 2]}, "json").json()
    assert right["correct"] is True and right["text"] == "top-k + top-p"
    partly = client_for(other_student).post(url, {"picked": [2]}, "json").json()
    assert partly["correct"] is False and partly["expected"] == {"correct": [2, 3]}
    results = client_for(instructor).get(f"/api/v1/questions/{asked['id']}/results/").json()
    assert results["answers"] == 2 and results["right"] == 1 and results["share_right"] == 0.5
    assert [(row["text"], row["count"], row["correct"]) for row in results["rows"]] == [
        ("repetition penalty", 0, False),
        ("temperature", 0, False),
        ("top-k", 2, True),
        ("top-p", 1, True),
    ]


def test_the_distribution_counts_each_token_and_the_share_right(instructor, item):
    asked = _next_token(client_for(instructor), item)
    recorded = item.exploration.root.sequence()[1].text
    wrong = next(text for text in asked["choices"] if text.strip() != recorded.strip())
    for number, text in enumerate([recorded, recorded.strip(), wrong]):
        person = make_person(f"pupil{number}", "Student")
        url = f"/api/v1/questions/{asked['id']}/answer/"
        assert client_for(person).post(url, {"text": text}, "json").status_code == 201
    results = client_for(instructor).get(f"/api/v1/questions/{asked['id']}/results/").json()
    assert results["answers"] == 3 and results["right"] == 2
    assert results["rows"][0]["count"] == 2 and results["rows"][0]["correct"] is True
    assert results["rows"][0]["p_base"] is not None
    assert results["rows"][1] == {
        "text": wrong,
        "count": 1,
        "correct": False,
        "share": pytest.approx(1 / 3),
        "p_base": pytest.approx(results["rows"][1]["p_base"]),
    }
    everyone = client_for(instructor).get(f"/api/v1/questions/{asked['id']}/answers/").json()
    assert [row["student"] for row in everyone] == ["pupil0", "pupil1", "pupil2"]


def test_free_text_is_kept_unmarked(instructor, student, item):
    asked = _ask(client_for(instructor), item, kind="free_text", text="Why this token?")
    url = f"/api/v1/questions/{asked['id']}/answer/"
    body = client_for(student).post(url, {"text": "  Because  "}, "json").json()
    assert body["correct"] is None and body["text"] == "Because" and body["expected"] is None
    results = client_for(instructor).get(f"/api/v1/questions/{asked['id']}/results/").json()
    assert results["right"] is None and results["rows"][0]["text"] == "Because"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"kind": "next_token", "text": "Next?"}, "step_index", "which step"),
        ({"kind": "next_token", "text": "Next?", "step_index": 2}, "step_index", "no step #2"),
        ({"kind": "next_token", "text": " ", "step_index": 0}, "text", "blank"),
        ({"kind": "essay", "text": "Why?"}, "kind", "valid choice"),
        ({"kind": "multiple_choice", "text": "Which?", "choices": ["a"]}, "choices", "2 to 8"),
        (
            {"kind": "multiple_choice", "text": "Which?", "choices": ["a", "a"], "correct": [0]},
            "choices",
            "different",
        ),
        (
            {"kind": "multiple_choice", "text": "Which?", "choices": ["a", "b"], "correct": []},
            "correct",
            "which choice is right",
        ),
        (
            {"kind": "multiple_choice", "text": "Which?", "choices": ["a", "b"], "correct": [2]},
            "correct",
            "no choice 2",
        ),
        ({"kind": "free_text", "text": "Why?", "choices": ["a", "b"]}, "choices", "Only"),
        ({"kind": "free_text", "text": 5}, "text", "not a number"),
        ({"kind": "free_text", "text": "x" * 501}, "text", "500"),
    ],
)
def test_a_bad_question_is_refused_naming_the_field(instructor, item, body, field, words):
    response = client_for(instructor).post(_questions_url(item), body, "json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"], error
    assert not LessonQuestion.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [({"text": ""}, "text"), ({"text": "x" * 101}, "text"), ({"text": 3}, "text"), ({}, "text")],
)
def test_a_bad_answer_is_refused_and_saves_nothing(instructor, student, item, body, field):
    asked = _next_token(client_for(instructor), item)
    response = client_for(student).post(f"/api/v1/questions/{asked['id']}/answer/", body, "json")
    assert response.status_code == 400 and response.json()["error"]["field"] == field
    assert not QuestionAnswer.objects.exists()
    assert not Exploration.objects.filter(owner=student).exists()


def test_a_bad_multiple_choice_pick_is_refused(instructor, student, item):
    body = {"kind": "multiple_choice", "text": "Which?", "choices": STAGES, "correct": [0]}
    asked = _ask(client_for(instructor), item, **body)
    url = f"/api/v1/questions/{asked['id']}/answer/"
    for picked, words in (([], "Pick a choice"), ([9], "no choice 9"), ([1, 1], "once")):
        response = client_for(student).post(url, {"picked": picked}, "json")
        assert response.status_code == 400 and words in response.json()["error"]["message"]
    assert not QuestionAnswer.objects.exists()


def test_once_answered_only_the_wording_changes(instructor, student, item):
    teacher = client_for(instructor)
    asked = _next_token(teacher, item)
    url = f"/api/v1/questions/{asked['id']}/"
    moved = teacher.patch(url, {"step_index": 0}, "json")
    assert moved.status_code == 200 and moved.json()["step_index"] == 0
    client_for(student).post(f"{url}answer/", {"text": "x"}, "json")
    refused = teacher.patch(url, {"step_index": 1}, "json")
    assert refused.status_code == 409 and "1 student answered" in refused.json()["error"]["message"]
    assert LessonQuestion.objects.get().step_index == 0
    reworded = teacher.patch(url, {"text": "What comes next here?"}, "json")
    assert reworded.status_code == 200 and reworded.json()["text"] == "What comes next here?"
    assert teacher.delete(url).status_code == 204
    assert not QuestionAnswer.objects.exists() and Exploration.objects.filter(owner=student)
    assert AuditEvent.objects.filter(action="question.delete").get().detail == {"answers": 1}


def test_the_export_carries_questions_and_the_import_brings_them_back(instructor, item):
    teacher = client_for(instructor)
    _next_token(teacher, item)
    _ask(teacher, item, kind="multiple_choice", text="Which?", choices=STAGES, correct=[1])
    exported = teacher.get(f"/api/v1/lessons/{item.lesson_id}/export/").json()
    assert [q["kind"] for q in exported["items"][0]["questions"]] == [
        "next_token",
        "multiple_choice",
    ]
    imported = teacher.post("/api/v1/lessons/import/", exported, "json")
    assert imported.status_code == 201, imported.content
    copy = Lesson.objects.get(pk=imported.json()["id"]).items.get(position=0)
    copied = list(copy.questions.order_by("position"))
    original = list(item.questions.order_by("position"))
    for mine, theirs in zip(copied, original, strict=True):
        for name in ("kind", "text", "step_index", "choices", "correct", "recorded"):
            assert getattr(mine, name) == getattr(theirs, name), name


def test_an_old_export_without_questions_still_imports(instructor, item):
    teacher = client_for(instructor)
    exported = teacher.get(f"/api/v1/lessons/{item.lesson_id}/export/").json()
    for exported_item in exported["items"]:
        exported_item.pop("questions")
    imported = teacher.post("/api/v1/lessons/import/", exported, "json")
    assert imported.status_code == 201, imported.content


def test_an_import_with_a_bad_question_saves_nothing(instructor, item):
    teacher = client_for(instructor)
    _next_token(teacher, item)
    exported = teacher.get(f"/api/v1/lessons/{item.lesson_id}/export/").json()
    exported["items"][0]["questions"][0]["step_index"] = 99
    before = Lesson.objects.count(), Exploration.objects.count()
    refused = teacher.post("/api/v1/lessons/import/", exported, "json")
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "items[0].questions[0].step_index"
    assert (Lesson.objects.count(), Exploration.objects.count()) == before
