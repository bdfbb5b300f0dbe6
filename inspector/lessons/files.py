"""A lesson as a file: export to JSON, and import that JSON as a new private lesson of the
requesting instructor (every exploration checked as an exploration import checks it)."""

from __future__ import annotations

from django.db import transaction

from inspector.accounts import audit
from inspector.errors import ServiceError
from inspector.lessons.input import (
    LESSON_FIELDS,
    MAX_ITEMS,
    clean_goals,
    clean_lesson,
    clean_notes,
    clean_prompts,
)
from inspector.lessons.question_input import MAX_QUESTIONS, QUESTION_FIELDS, clean_question
from inspector.lessons.services import items_of, require_instructor
from inspector.models import Lesson, LessonItem, LessonQuestion
from inspector.transfer import file_format as transfer_validation
from inspector.transfer import services as transfer

EXPORT_FORMAT = "tokenlens-lesson"


def export_lesson(lesson: Lesson, *, with_questions: bool = False) -> dict:
    """The lesson as JSON-safe data: its fields, then each item with its exploration's export
    and, `with_questions` (the lesson's instructors only: a question carries its right
    answer), its questions; a reader's export has no `questions`, as a file from before
    questions."""
    items = []
    for item in items_of(lesson):
        exported = {
            "position": item.position,
            "note": item.note,
            "suggested_prompts": item.suggested_prompts,
            "exploration": transfer.export_exploration(item.exploration),
        }
        if with_questions:
            exported["questions"] = [
                {"position": question.position}
                | {name: getattr(question, name) for name in QUESTION_FIELDS}
                for question in item.questions.order_by("position", "pk")
            ]
        items.append(exported)
    fields = {name: getattr(lesson, name) for name in LESSON_FIELDS}
    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "lesson": {"id": str(lesson.pk), "owner": lesson.owner.get_username(), **fields},
        "items": items,
    }


def import_lesson(request, data) -> Lesson:
    """A new private lesson of the requesting instructor from export_lesson's JSON, with a copy
    of each exploration. The whole file is checked first (each exploration as an exploration
    import checks it; fields named like "items[1].exploration.branches[0].steps[2].index"),
    then everything is written in one transaction, or nothing."""
    require_instructor(request)
    fields, items = _validated_lesson_file(data)
    with transaction.atomic():
        lesson = Lesson.objects.create(owner=request.user, **fields)
        for position, item in enumerate(items):
            exploration = transfer.import_exploration(item["exploration"], request)
            created = LessonItem.objects.create(
                lesson=lesson,
                exploration=exploration,
                position=position,
                note=item["note"],
                suggested_prompts=item["suggested_prompts"],
            )
            _import_questions(created, position, item["questions"])
    audit.record(request, "lesson.import", lesson, f"imported “{lesson}” ({len(items)} items)")
    return lesson


def _validated_lesson_file(data) -> tuple[dict, list[dict]]:
    if not isinstance(data, dict):
        raise ServiceError("A lesson file is a JSON object exported from TokenLens")
    if data.get("format") != EXPORT_FORMAT:
        raise ServiceError(
            f"This is not a TokenLens lesson file: its format is {data.get('format')!r}, "
            f"expected {EXPORT_FORMAT!r}",
            field="format",
        )
    if data.get("version") != 1 or isinstance(data.get("version"), bool):
        raise ServiceError(
            f"This file is version {data.get('version')}; this TokenLens reads version 1",
            field="version",
        )
    lesson = data.get("lesson")
    if not isinstance(lesson, dict):
        raise ServiceError("The file has no lesson object", field="lesson")
    texts = {name: lesson.get(name, "") for name in ("title", "notes")}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise ServiceError(f"The lesson's {name} is text", field=name)
    fields = clean_lesson(texts)
    fields["goals"] = clean_goals(lesson.get("goals") or [])
    items = data.get("items")
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise ServiceError(f"`items` is a list of at most {MAX_ITEMS} items", field="items")
    return fields, [_validated_item(index, item) for index, item in enumerate(items)]


def _validated_item(index: int, item) -> dict:
    where = f"items[{index}]"
    if not isinstance(item, dict):
        raise ServiceError("Each item is a JSON object", field=where)
    try:
        transfer_validation.validate_file(item.get("exploration"))
        return {
            "note": clean_notes(item.get("note") or "", field="note"),
            "suggested_prompts": clean_prompts(item.get("suggested_prompts") or []),
            "exploration": item["exploration"],
            "questions": _question_list(item.get("questions")),
        }
    except ServiceError as error:
        inner = "" if error.field in ("note", "suggested_prompts", "questions") else "exploration"
        field = "" if error.field == "non_field_errors" else error.field
        error.field = ".".join(part for part in (where, inner, field) if part)
        raise


def _question_list(questions) -> list:
    """An item's questions as the file has them (a file from before questions has none)."""
    if questions is None:
        return []
    if not isinstance(questions, list) or len(questions) > MAX_QUESTIONS:
        raise ServiceError(
            f"`questions` is a list of at most {MAX_QUESTIONS} questions", field="questions"
        )
    return questions


def _import_questions(item: LessonItem, index: int, questions: list) -> None:
    """Each question checked against the item's newly imported exploration, as one asked on
    the page is (a next-token question's recorded answer is read from its steps again)."""
    for number, question in enumerate(questions):
        where = f"items[{index}].questions[{number}]"
        if not isinstance(question, dict):
            raise ServiceError("Each question is a JSON object", field=where)
        if question.get("kind") != LessonQuestion.Kind.MULTIPLE_CHOICE:
            # A next-token question's candidates are read from the steps again.
            question = {k: v for k, v in question.items() if k not in ("choices", "correct")}
        try:
            fields = clean_question(item, question)
        except ServiceError as error:
            error.field = f"{where}.{error.field}"
            raise
        LessonQuestion.objects.create(item=item, position=number, **fields)
