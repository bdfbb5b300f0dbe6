"""Use-cases of lesson questions, shared by the lesson pages and the API.

The lesson's instructor attaches questions to an item: "which token comes next?" (answered
from the recorded step before the lesson page reveals it), multiple choice, or free text. A
signed-in student answers each once (a second answer is a 409: the first one revealed the
answer), is told whether they were right, and the answer is kept with their fork of the item's
exploration, made on their first answer if they have none. The lesson's instructors (owner and
co-instructors) read every answer and the class's distribution; who may do what is decided in
inspector.accounts.access.question_rights.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from inspector.accounts import access, audit
from inspector.errors import ServiceError
from inspector.lessons import services as lessons
from inspector.lessons.question_input import (
    ANSWER_FIELDS,
    MAX_QUESTIONS,
    Kind,
    clean_answer,
    clean_question,
    token_key,
)
from inspector.models import Exploration, Lesson, LessonItem, LessonQuestion, QuestionAnswer

REFUSALS = {
    "edit": "Only the lesson's instructor changes its questions",
    "read_answers": "Only the lesson's instructors read the class's answers",
}

# --- finding questions ------------------------------------------------------------------------


def get_question(request, question_id, need: str = "view") -> LessonQuestion:
    """The question, if the request may `need` it (view, edit, answer, read_answers): those
    who may not open its lesson get 404, readers who ask for more 403."""
    try:
        question = LessonQuestion.objects.select_related(
            "item__lesson__owner", "item__exploration"
        ).get(pk=question_id)
    except (LessonQuestion.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ServiceError("No such question", field="question", status=404) from None
    require(request, question.item.lesson, need)
    return question


def require(request, lesson: Lesson, need: str) -> access.QuestionRights:
    rights = access.question_rights(request, lesson)
    if not rights.view:
        raise ServiceError("No such lesson", field="lesson", status=404)
    if need == "answer" and not rights.answer:
        raise ServiceError(_why_not_answer(request), field="question", status=403)
    if not getattr(rights, need):
        raise ServiceError(REFUSALS[need], field="question", status=403)
    return rights


def _why_not_answer(request) -> str:
    if access.user_of(request) is None:
        return "Sign in to answer: your answers are kept with your account and your fork"
    return "The lesson's instructors do not answer its questions (they read the answers)"


def questions_of(item: LessonItem) -> QuerySet[LessonQuestion]:
    return item.questions.order_by("position", "pk")


def lesson_questions(lesson: Lesson) -> QuerySet[LessonQuestion]:
    """Every question of the lesson, item by item."""
    found = LessonQuestion.objects.filter(item__lesson=lesson).select_related("item")
    return found.order_by("item__position", "item__pk", "position", "pk")


def answers_by_question(user, questions) -> dict[int, QuestionAnswer]:
    """The user's answers to these questions, by question id (none for a visitor)."""
    if user is None:
        return {}
    found = QuestionAnswer.objects.filter(student=user, question__in=list(questions))
    found = found.select_related("question")
    return {answer.question_id: answer for answer in found}


def answers_for(request, question: LessonQuestion) -> QuerySet[QuestionAnswer]:
    """Every answer for the lesson's instructors; anyone else only their own."""
    found = question.answers.select_related("student").order_by("answered_at", "pk")
    if access.question_rights(request, question.item.lesson).read_answers:
        return found
    user = access.user_of(request)
    return found.filter(student=user) if user else found.none()


# --- the instructor's changes -----------------------------------------------------------------


def add_question(request, item: LessonItem, data: dict) -> LessonQuestion:
    """A new question at the end of the item's (the caller checked the request may edit)."""
    fields = clean_question(item, data)
    with transaction.atomic():
        LessonItem.objects.select_for_update().get(pk=item.pk)
        count = item.questions.count()
        if count >= MAX_QUESTIONS:
            raise ServiceError(f"A lesson item holds at most {MAX_QUESTIONS} questions", "text")
        last = item.questions.order_by("-position").values_list("position", flat=True).first()
        position = 0 if last is None else last + 1
        question = LessonQuestion.objects.create(item=item, position=position, **fields)
    audit.record(
        request, "question.create", question, f"asked {question.text!r}"[:300], item=item.pk
    )
    return question


def update_question(request, question: LessonQuestion, data: dict) -> LessonQuestion:
    """Change the given fields. Once someone answered, only the wording may change (what is
    right stays what their answers were marked against): anything else is a 409."""
    fields = clean_question(question.item, data, current=question)
    changed = sorted(name for name, value in fields.items() if getattr(question, name) != value)
    if not changed:
        return question
    with transaction.atomic():
        answered = LessonQuestion.objects.select_for_update().get(pk=question.pk).answers.count()
        answer_fields = [name for name in changed if name in ANSWER_FIELDS]
        if answered and answer_fields:
            raise ServiceError(
                f"{answered} student{'s' if answered > 1 else ''} answered this question, so its "
                f"{', '.join(answer_fields)} cannot change (its wording can); ask a new "
                "question instead",
                field=answer_fields[0],
                status=409,
            )
        for name in changed:
            setattr(question, name, fields[name])
        question.save()
    summary = f"changed {', '.join(changed)} of question {question.text!r}"
    audit.record(request, "question.update", question, summary[:300], fields=changed)
    return question


def delete_question(request, question: LessonQuestion) -> None:
    """Delete the question and its answers (the students' forks stay). It takes the lock an
    answer takes to mark itself, so an answer racing it is either deleted with it or told the
    question is gone."""
    with transaction.atomic():
        try:
            locked = LessonQuestion.objects.select_for_update().get(pk=question.pk)
        except LessonQuestion.DoesNotExist:
            raise _gone() from None
        answered = locked.answers.count()
        audit.record(
            request,
            "question.delete",
            locked,
            f"deleted question {locked.text!r} ({answered} answers)"[:300],
            answers=answered,
        )
        locked.delete()


# --- answering --------------------------------------------------------------------------------


def answer(request, question: LessonQuestion, data: dict) -> QuestionAnswer:
    """The student's one answer, marked right or wrong, kept with their fork of the item.

    Locks: the student's own row (one student's racing answers find one fork and one answer;
    other students answer meanwhile), then, after forking, the question itself, read again
    and marked against as it is now: a change or a delete of the question waits for the
    answer or comes first (then the answer is marked against the change, or told the
    question is gone). The one_answer_per_student constraint backs the one answer."""
    clean_answer(question, data)  # a bad answer is refused before anything is copied
    user = access.user_of(request)
    item = question.item
    with transaction.atomic():
        # FOR NO KEY UPDATE: it waits for the student's other answer, not for rows of theirs
        # being written meanwhile (those take a key-share lock on the user).
        get_user_model().objects.select_for_update(no_key=True).get(pk=user.pk)
        if QuestionAnswer.objects.filter(question=question, student=user).exists():
            raise _answered_already()
        fork = own_fork(request, item) or lessons.fork_item(request, item.lesson, item)
        try:
            current = LessonQuestion.objects.select_for_update().get(pk=question.pk)
        except LessonQuestion.DoesNotExist:
            raise _gone() from None
        given = clean_answer(current, data)
        try:
            with transaction.atomic():
                return QuestionAnswer.objects.create(
                    question=current, student=user, fork=fork, **given
                )
        except IntegrityError:
            raise _answered_already() from None


def _gone() -> ServiceError:
    return ServiceError(
        "This question was deleted by the lesson's instructor: nothing was saved",
        field="question",
        status=404,
    )


def _answered_already() -> ServiceError:
    return ServiceError(
        "You answered this question already: one answer each, since an answer reveals the "
        "right one",
        field="question",
        status=409,
    )


def own_fork(request, item: LessonItem) -> Exploration | None:
    """The requester's newest fork of the item's exploration from this lesson."""
    forks = Exploration.objects.filter(
        access.owned_by(request),
        forked_from=item.exploration_id,
        forked_from_lesson=item.lesson_id,
    )
    return forks.order_by("-created_at").first()


# --- the class's answers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    """The class's answers to one question: `rows` one per distinct answer (multiple choice:
    one per choice), each {"text", "count", "share", "correct"} (+ "p_base" for next_token);
    `right` and `share_right` are None for free text."""

    answers: int
    right: int | None
    share_right: float | None
    rows: list[dict]

    def to_dict(self) -> dict:
        return {
            "answers": self.answers,
            "right": self.right,
            "share_right": self.share_right,
            "rows": self.rows,
        }


def results(question: LessonQuestion) -> Results:
    given = list(question.answers.all())
    total = len(given)
    if question.kind == Kind.MULTIPLE_CHOICE:
        rows = [
            {
                "text": choice,
                "count": sum(1 for answer in given if index in answer.picked),
                "correct": index in question.correct,
            }
            for index, choice in enumerate(question.choices)
        ]
    else:
        rows = _grouped(question, given)
    for row in rows:
        row["share"] = row["count"] / total if total else 0.0
    if question.kind == Kind.FREE_TEXT:
        return Results(total, None, None, rows)
    right = sum(1 for answer in given if answer.correct)
    return Results(total, right, right / total if total else None, rows)


def _grouped(question: LessonQuestion, given: list[QuestionAnswer]) -> list[dict]:
    """Distinct answers, most given first: tokens by token_key (next_token, with the model's
    recorded p_base of that token when it was a top candidate), free text case aside."""
    tokens = question.kind == Kind.NEXT_TOKEN

    def key(text: str) -> str:
        return token_key(text) if tokens else " ".join(text.split()).casefold()

    rows: dict[str, dict] = {}
    for answer in given:
        row = rows.setdefault(key(answer.text), {"text": answer.text, "count": 0})
        row["count"] += 1
        row["correct"] = answer.correct
    if tokens:
        recorded = {}
        for token in question.recorded.get("candidates", []):
            recorded.setdefault(token_key(token["text"]), token.get("p_base"))
        for row_key, row in rows.items():
            row["p_base"] = recorded.get(row_key)
    return sorted(rows.values(), key=lambda row: -row["count"])
