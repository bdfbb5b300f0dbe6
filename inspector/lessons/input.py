"""Checking what an instructor typed into a lesson (title, notes, goals, prompts, visibility):
cleaned values, or a ServiceError naming the field."""

from __future__ import annotations

from rest_framework import serializers

from inspector.errors import ServiceError
from inspector.models import Lesson

MAX_TITLE_CHARS = 200
MAX_NOTES_CHARS = 20_000
MAX_GOALS = 20
MAX_GOAL_CHARS = 300
MAX_ITEMS = 50
MAX_PROMPTS = 20
MAX_PROMPT_CHARS = 500
LESSON_FIELDS = ("title", "notes", "goals", "visibility")
STORABLE_TEXT = serializers.CharField(allow_blank=True, trim_whitespace=False)


def storable_text(text: str, field: str) -> str:
    """The text, unless it holds a NUL or a lone surrogate (a JSON import can carry both; no
    database column keeps them): the checks DRF's CharField makes for the API's fields."""
    try:
        return STORABLE_TEXT.run_validation(text)
    except serializers.ValidationError as error:
        raise ServiceError(str(error.detail[0]), field=field) from None


def clean_title(title) -> str:
    title = storable_text(str(title or "").strip(), "title")
    if not title:
        raise ServiceError("Give the lesson a title", field="title")
    if len(title) > MAX_TITLE_CHARS:
        raise ServiceError(
            f"The title is too long: at most {MAX_TITLE_CHARS} characters ({len(title)} given)",
            field="title",
        )
    return title


def clean_notes(notes, field: str = "notes") -> str:
    notes = storable_text(str(notes or ""), field)
    if len(notes) > MAX_NOTES_CHARS:
        raise ServiceError(f"At most {MAX_NOTES_CHARS:,} characters of notes", field=field)
    return notes


def split_lines(text) -> list[str]:
    """A form's "one per line" text (or a list from the API) as a list of lines."""
    if isinstance(text, list | tuple):
        return [str(line) for line in text]
    return str(text or "").splitlines()


def clean_lines(lines, *, field: str, what: str, most: int, longest: int) -> list[str]:
    """Lines trimmed, empty ones dropped; at most `most` of at most `longest` characters."""
    kept = [storable_text(line.strip(), field) for line in split_lines(lines) if line.strip()]
    if len(kept) > most:
        raise ServiceError(f"At most {most} {what} ({len(kept)} given)", field=field)
    for number, line in enumerate(kept, start=1):
        if len(line) > longest:
            raise ServiceError(
                f"{what.capitalize()} {number} is too long: at most {longest} characters",
                field=field,
            )
    return kept


def clean_goals(goals) -> list[str]:
    return clean_lines(goals, field="goals", what="goals", most=MAX_GOALS, longest=MAX_GOAL_CHARS)


def clean_prompts(prompts) -> list[str]:
    return clean_lines(
        prompts,
        field="suggested_prompts",
        what="suggested prompts",
        most=MAX_PROMPTS,
        longest=MAX_PROMPT_CHARS,
    )


def clean_visibility(visibility) -> str:
    if visibility not in Lesson.Visibility.values:
        choices = ", ".join(Lesson.Visibility.values)
        raise ServiceError(f"Visibility is one of {choices}", field="visibility")
    return visibility


CLEANERS = {
    "title": clean_title,
    "notes": clean_notes,
    "goals": clean_goals,
    "visibility": clean_visibility,
}


def clean_lesson(data: dict) -> dict:
    """The lesson fields given in `data`, checked (others are left out)."""
    return {name: CLEANERS[name](data[name]) for name in LESSON_FIELDS if name in data}
