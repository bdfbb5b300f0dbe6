"""Use-cases of lessons, shared by the lesson pages and the API.

An instructor builds a lesson from explorations they own, in order, each with a Markdown note
and prompts to try; readers (published, or link-only with the link) open each exploration
read-only and fork it into their own workspace. Who may do what is decided in
inspector.accounts.access.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from inspector.accounts import access, audit
from inspector.api.errors import first_error
from inspector.errors import ServiceError
from inspector.explorations.services import explorations_for
from inspector.lessons.input import (  # split out of this module
    MAX_ITEMS,
    clean_lesson,
    clean_notes,
    clean_prompts,
)
from inspector.models import Exploration, Lesson, LessonItem, new_link_token
from inspector.transfer import services as transfer

# --- finding lessons --------------------------------------------------------------------------


def require_instructor(request) -> None:
    if not access.is_instructor(access.user_of(request)):
        raise ServiceError("Only instructors create lessons", field="lesson", status=403)


def get_lesson(request, lesson_id, need: str = "view") -> Lesson:
    """The lesson, if the request may `need` it (view, change, fork): strangers get 404 (a
    private or link-only lesson does not tell it exists), readers who ask to change 403."""
    try:
        lesson = Lesson.objects.select_related("owner").get(pk=lesson_id)
    except (Lesson.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ServiceError("No such lesson", field="lesson", status=404) from None
    granted = access.lesson_access(request, lesson)
    if not granted.view:
        raise ServiceError("No such lesson", field="lesson", status=404)
    if not getattr(granted, need):
        raise ServiceError("Only the lesson's instructor changes it", field="lesson", status=403)
    return lesson


def get_item(lesson: Lesson, item_id) -> LessonItem:
    try:
        return lesson.items.select_related("exploration").get(pk=item_id)
    except (LessonItem.DoesNotExist, ValueError, TypeError, ValidationError):
        raise ServiceError("No such item in this lesson", field="item", status=404) from None


def open_link(request, token: str) -> Lesson:
    """The lesson behind a link token (not private); the session remembers the token, so the
    lesson and its explorations open for this browser from now on."""
    shared = Lesson.objects.exclude(visibility=Lesson.Visibility.PRIVATE)
    found = shared.filter(link_token=token).first()
    if found is None:
        raise ServiceError("No such lesson", field="lesson", status=404)
    access.remember_token(request, access.LESSON_TOKENS, token)
    return found


def published_lessons() -> QuerySet[Lesson]:
    return Lesson.objects.filter(visibility=Lesson.Visibility.PUBLISHED).select_related("owner")


def own_lessons(request) -> QuerySet[Lesson]:
    user = access.user_of(request)
    return Lesson.objects.filter(owner=user) if user else Lesson.objects.none()


def items_of(lesson: Lesson) -> QuerySet[LessonItem]:
    return lesson.items.select_related("exploration").order_by("position", "pk")


def own_forks_of(request, lesson: Lesson) -> QuerySet[Exploration]:
    """The requester's own explorations from this lesson: forks of its items and the texts
    they took from its live sessions (Try it myself)."""
    return own_forks(request).filter(forked_from_lesson=lesson).order_by("-created_at")


def items_with_text(lesson: Lesson) -> list[LessonItem]:
    """The items, each with `recorded`: its exploration's main branch as it was written (the
    steps, for colouring each token by how likely the model found it)."""
    items = list(items_of(lesson))
    for item in items:
        item.recorded = item.exploration.root.sequence(with_candidates=False)
    return items


def own_forks(request) -> QuerySet[Exploration]:
    """The requester's explorations forked from a lesson."""
    forks = explorations_for(request).filter(forked_from_lesson__isnull=False)
    return forks.select_related("forked_from_lesson")


def forks_of_lessons(user) -> QuerySet[Exploration]:
    """Every fork made of this instructor's lessons, newest first (students' and visitors')."""
    forks = Exploration.objects.filter(forked_from_lesson__owner=user)
    return forks.select_related("owner", "forked_from_lesson").order_by("-created_at")


def explorations_to_add(request, lesson: Lesson) -> QuerySet[Exploration]:
    """The requester's explorations not yet in the lesson, most recently changed first."""
    mine = explorations_for(request).exclude(lesson_items__lesson=lesson)
    return mine.order_by("-updated_at")


# --- changing lessons -------------------------------------------------------------------------


def create_lesson(request, data: dict) -> Lesson:
    require_instructor(request)
    fields = clean_lesson({"title": "", **data})
    lesson = Lesson.objects.create(owner=access.user_of(request), **fields)
    audit.record(request, "lesson.create", lesson, f"created lesson {lesson.title!r}")
    return lesson


def update_lesson(request, lesson: Lesson, data: dict) -> Lesson:
    """Change the given fields; the audit log keeps which (and the old and new visibility)."""
    fields = clean_lesson(data)
    changed = {name: value for name, value in fields.items() if getattr(lesson, name) != value}
    if not changed:
        return lesson
    detail: dict = {"fields": sorted(changed)}
    if "visibility" in changed:
        detail["visibility"] = {"old": lesson.visibility, "new": changed["visibility"]}
    for name, value in changed.items():
        setattr(lesson, name, value)
    lesson.save()
    summary = f"changed {', '.join(sorted(changed))} of lesson {lesson.title!r}"
    audit.record(request, "lesson.update", lesson, summary, **detail)
    return lesson


MAX_CO_INSTRUCTORS = 10


def set_co_instructors(request, lesson: Lesson, text: str) -> list[str]:
    """The instructors (usernames, one per line or comma) who may present the lesson live too;
    an unknown name or someone who is not an instructor is refused and nothing changes."""
    from django.contrib.auth import get_user_model

    names = [name.strip() for name in text.replace(",", "\n").splitlines() if name.strip()]
    names = list(dict.fromkeys(names))
    if len(names) > MAX_CO_INSTRUCTORS:
        raise ServiceError(f"At most {MAX_CO_INSTRUCTORS} co-instructors", "co_instructors")
    people = {
        user.get_username(): user for user in get_user_model().objects.filter(username__in=names)
    }
    for name in names:
        person = people.get(name)
        if person is None or not access.is_instructor(person):
            raise ServiceError(f"{name[:150]} is not an instructor here", "co_instructors")
        if person.pk == lesson.owner_id:
            raise ServiceError("You are the lesson's instructor already", "co_instructors")
    lesson.co_instructors.set([people[name] for name in names])
    audit.record(
        request, "lesson.co_instructors", lesson, f"co-instructors: {', '.join(names)}"[:300]
    )
    return names


def renew_link(request, lesson: Lesson) -> None:
    """A new link token: the old link stops opening the lesson (for new readers and for
    those who opened it before)."""
    lesson.link_token = new_link_token()
    lesson.save(update_fields=["link_token", "updated_at"])
    audit.record(request, "lesson.renew_link", lesson, f"made a new link for {lesson.title!r}")


def delete_lesson(request, lesson: Lesson) -> None:
    audit.record(request, "lesson.delete", lesson, f"deleted lesson {lesson.title!r}")
    lesson.delete()


def _own_exploration(request, exploration_id) -> Exploration:
    try:
        found = explorations_for(request).filter(pk=exploration_id).first()
    except (ValueError, TypeError, ValidationError):
        found = None
    if found is None:
        raise ServiceError("Choose one of your own explorations", field="exploration")
    return found


def add_item(request, lesson: Lesson, exploration_id, note="", suggested_prompts=()) -> LessonItem:
    """Put one of the instructor's own explorations at the end of the lesson."""
    exploration = _own_exploration(request, exploration_id)
    note = clean_notes(note, field="note")
    prompts = clean_prompts(suggested_prompts)
    with transaction.atomic():
        count = Lesson.objects.select_for_update().get(pk=lesson.pk).items.count()
        if count >= MAX_ITEMS:
            raise ServiceError(f"A lesson holds at most {MAX_ITEMS} explorations", "exploration")
        if lesson.items.filter(exploration=exploration).exists():
            raise ServiceError("This exploration is already in the lesson", "exploration")
        item = LessonItem.objects.create(
            lesson=lesson,
            exploration=exploration,
            position=count,
            note=note,
            suggested_prompts=prompts,
        )
        _touch(lesson)
    return item


def update_item(item: LessonItem, note=None, suggested_prompts=None) -> LessonItem:
    """Set the item's note and/or prompts (None leaves one as it is)."""
    if note is not None:
        item.note = clean_notes(note, field="note")
    if suggested_prompts is not None:
        item.suggested_prompts = clean_prompts(suggested_prompts)
    item.save(update_fields=["note", "suggested_prompts"])
    _touch(item.lesson)
    return item


def remove_item(item: LessonItem) -> None:
    lesson = item.lesson
    with transaction.atomic():
        item.delete()
        _renumber(lesson, list(items_of(lesson)))


def move_item(item: LessonItem, direction: str) -> None:
    """Swap the item with the one before it ("up") or after it ("down"); ends stay put."""
    if direction not in ("up", "down"):
        raise ServiceError("Move an item up or down", field="direction")
    items = list(items_of(item.lesson))
    here = next(index for index, other in enumerate(items) if other.pk == item.pk)
    there = here - 1 if direction == "up" else here + 1
    if 0 <= there < len(items):
        items[here], items[there] = items[there], items[here]
    _renumber(item.lesson, items)


def set_order(lesson: Lesson, item_ids: list) -> None:
    """Put the items in this order; `item_ids` names every item of the lesson once."""
    items = {item.pk: item for item in items_of(lesson)}
    try:
        wanted = [int(item_id) for item_id in item_ids]
    except (TypeError, ValueError):
        raise ServiceError("Item ids are whole numbers", field="items") from None
    if sorted(wanted) != sorted(items):
        raise ServiceError(
            f"Name each of the lesson's {len(items)} items once, in the new order", field="items"
        )
    _renumber(lesson, [items[item_id] for item_id in wanted])


def _renumber(lesson: Lesson, items: list[LessonItem]) -> None:
    """Positions 0..n-1 in the order given."""
    changed = []
    for position, item in enumerate(items):
        if item.position != position:
            item.position = position
            changed.append(item)
    with transaction.atomic():
        LessonItem.objects.bulk_update(changed, ["position"])
        _touch(lesson)


def _touch(lesson: Lesson) -> None:
    lesson.save(update_fields=["updated_at"])


def fork_item(request, lesson: Lesson, item: LessonItem) -> Exploration:
    """A copy of the item's exploration (every branch and step) in the requester's workspace,
    remembered as forked from the lesson so its instructor can read it."""
    copy = transfer.copy_exploration(item.exploration, request, lesson=lesson)
    summary = f"forked {item.exploration} from lesson {lesson.title!r}"
    audit.record(
        request,
        "lesson.fork",
        lesson,
        summary,
        item=item.pk,
        source=str(item.exploration_id),
        fork=str(copy.pk),
    )
    return copy


def try_prompt(request, lesson: Lesson, item: LessonItem, index: int) -> Exploration:
    """A new exploration of one of the item's suggested prompts, with the item's model and
    settings, in the requester's workspace (validated as the API validates a new one)."""
    from inspector.explorations.serializers import ExplorationSerializer
    from inspector.explorations.services import create_exploration

    prompts = item.suggested_prompts or []
    if not 0 <= index < len(prompts):
        raise ServiceError("That suggested prompt is not in this lesson item", field="prompt")
    source = item.exploration
    serializer = ExplorationSerializer(
        data={
            "model": source.model_key,
            "prompt": prompts[index],
            "system_prompt": source.system_prompt,
            "use_chat_template": source.use_chat_template,
            "params": source.params,
            "max_new_tokens": source.max_new_tokens,
            "stop": source.stop,
            "constraint": source.constraint,
        }
    )
    if not serializer.is_valid():
        field, message = first_error(serializer.errors)
        raise ServiceError(message, field=field)
    return create_exploration(request, dict(serializer.validated_data))
