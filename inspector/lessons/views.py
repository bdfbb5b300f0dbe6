"""The lesson pages: thin views over inspector.lessons.services (the same use-cases as the API).

Every form posts to a real URL and redirects (no JavaScript needed); with htmx the edit page's
forms swap their own part of the page instead, and refusals come back as 422 with the message.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from inspector.accounts import access
from inspector.errors import ServiceError, page_refusal
from inspector.lessons import files as lesson_files
from inspector.lessons import services as lessons
from inspector.lessons.question_reading import annotate_items, question_forms
from inspector.models import Lesson, LessonItem
from inspector.transfer.views import ImportForm

LIST = "inspector/lessons.html"
PAGE = "inspector/lesson.html"
EDIT = "inspector/lesson_edit.html"
FORKS = "inspector/lesson_forks.html"


class LessonForm(forms.Form):
    """Shapes the lesson fields; inspector.lessons.services checks them (as it does for the API)."""

    title = forms.CharField(required=False, widget=forms.TextInput(attrs={"maxlength": 200}))
    notes = forms.CharField(
        required=False,
        strip=False,
        label="Notes (Markdown)",
        widget=forms.Textarea(attrs={"rows": 6}),
    )
    goals = forms.CharField(
        required=False,
        label="Learning goals (one per line)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    visibility = forms.ChoiceField(
        choices=Lesson.Visibility.choices, initial=Lesson.Visibility.PRIVATE
    )

    @classmethod
    def of(cls, lesson: Lesson) -> LessonForm:
        initial = {name: getattr(lesson, name) for name in ("title", "notes", "visibility")}
        return cls(initial={**initial, "goals": "\n".join(lesson.goals)})


class ItemForm(forms.Form):
    """An item's note and prompts to try (one per line)."""

    note = forms.CharField(
        required=False,
        strip=False,
        label="Note (Markdown)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    suggested_prompts = forms.CharField(
        required=False,
        label="Suggested prompts (one per line)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    @classmethod
    def of(cls, item: LessonItem) -> ItemForm:
        initial = {"note": item.note, "suggested_prompts": "\n".join(item.suggested_prompts)}
        return cls(initial=initial, auto_id=f"item-{item.pk}-%s")


class AddItemForm(ItemForm):
    """Which of the instructor's explorations to add; the use-case checks it is theirs."""

    exploration = forms.CharField(required=False, widget=forms.Select)
    field_order = ["exploration", "note", "suggested_prompts"]

    def __init__(self, *args, request, lesson, **kwargs):
        super().__init__(*args, auto_id="add-%s", **kwargs)
        mine = lessons.explorations_to_add(request, lesson)
        choices = [("", "Choose one of your explorations…")]
        choices += [(str(exploration.pk), _label(exploration)) for exploration in mine]
        self.fields["exploration"].widget.choices = choices


def _label(exploration) -> str:
    return f"{str(exploration)[:80]} ({exploration.model_key})"


def _apply(form: forms.Form, action) -> tuple[object, int | None]:
    """Run the use-case with the form's data: (its result, None), or (None, the status to
    answer with) when refused, the refusal's message put on its field."""
    if not form.is_valid():
        return None, 400
    try:
        return action(form.cleaned_data), None
    except ServiceError as error:
        form.add_error(error.field if error.field in form.fields else None, error.message)
        return None, error.status


def _lesson(request: HttpRequest, lesson_id, need: str = "view") -> Lesson:
    try:
        return lessons.get_lesson(request, lesson_id, need)
    except ServiceError as error:
        raise page_refusal(error) from None


def _item(request: HttpRequest, lesson_id, item_id, need: str = "change"):
    lesson = _lesson(request, lesson_id, need)
    try:
        return lesson, lessons.get_item(lesson, item_id)
    except ServiceError as error:
        raise Http404(error.message) from None


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _refused(request: HttpRequest, status: int) -> int:
    """htmx swaps 422 only; without it the refusal's own status (400, 403)."""
    return 422 if request.htmx else status


# --- the list, creating, reading --------------------------------------------------------------


def _list(
    request: HttpRequest, form: LessonForm, status: int = 200, import_form=None
) -> HttpResponse:
    context = {
        "import_form": import_form or ImportForm(),
        "published": lessons.published_lessons(),
        "is_instructor": access.is_instructor(access.user_of(request)),
        "mine": lessons.own_lessons(request),
        "forks": lessons.own_forks(request),
        "form": form,
    }
    return render(request, LIST, context, status=status)


@require_GET
def lesson_list(request: HttpRequest) -> HttpResponse:
    return _list(request, LessonForm())


@require_POST
def lesson_create(request: HttpRequest) -> HttpResponse:
    form = LessonForm(request.POST)
    lesson, refused = _apply(form, lambda data: lessons.create_lesson(request, data))
    if refused is None:
        return _redirect(request, reverse("lesson-edit", args=[lesson.pk]))
    if request.htmx:
        context = {"form": form, "is_instructor": True}
        return render(request, f"{LIST}#lesson-create-form", context, status=422)
    return _list(request, form, status=refused)


@require_POST
def lesson_import(request: HttpRequest) -> HttpResponse:
    """A lesson file uploaded from the lessons page becomes a new private lesson."""
    form = ImportForm(request.POST, request.FILES)

    def import_file(data):
        try:
            return lesson_files.import_lesson(request, data["file"])
        except ServiceError as error:
            if error.status != 403:  # say where in the file, beside the file input
                error.message = f"{error.message} (at {error.field})"
                error.field = "file"
            raise

    lesson, refused = _apply(form, import_file)
    if refused is None:
        return redirect("lesson-edit", lesson_id=lesson.pk)
    if refused == 403:
        raise PermissionDenied("Only instructors import lessons")
    return _list(request, LessonForm(), status=refused, import_form=form)


@require_GET
def lesson_page(request: HttpRequest, lesson_id) -> HttpResponse:
    return render(request, PAGE, page_context(request, _lesson(request, lesson_id)))


def page_context(request: HttpRequest, lesson: Lesson) -> dict:
    """The lesson page's context: each item with its text as far as this reader may see it
    and its questions (inspector.lessons.question_reading)."""
    granted = access.lesson_access(request, lesson)
    items = lessons.items_with_text(lesson)
    context = {"lesson": lesson, "items": items, "access": granted}
    context["rights"] = annotate_items(request, lesson, items)
    context["own_forks"] = lessons.own_forks_of(request, lesson)[:50]
    if granted.change and lesson.visibility == Lesson.Visibility.LINK:
        link = reverse("lesson-link", args=[lesson.link_token])
        context["share_url"] = request.build_absolute_uri(link)
    return context


@require_GET
def lesson_link(request: HttpRequest, token: str) -> HttpResponse:
    try:
        lesson = lessons.open_link(request, token)
    except ServiceError as error:
        raise Http404(error.message) from None
    return redirect("lesson", lesson.pk)


@require_POST
def item_fork(request: HttpRequest, lesson_id, item_id) -> HttpResponse:
    lesson, item = _item(request, lesson_id, item_id, need="fork")
    copy = lessons.fork_item(request, lesson, item)
    return _redirect(request, reverse("exploration", args=[copy.pk]))


@require_POST
def item_try(request: HttpRequest, lesson_id, item_id, index: int) -> HttpResponse:
    """Start an exploration of one of the item's suggested prompts with its settings."""
    lesson, item = _item(request, lesson_id, item_id, need="view")
    try:
        exploration = lessons.try_prompt(request, lesson, item, index)
    except ServiceError as error:
        context = {"error": error}
        status = _refused(request, error.status)
        return render(request, f"{PAGE}#try-error", context, status=status)
    return _redirect(request, reverse("exploration", args=[exploration.pk]))


@require_GET
def lesson_forks(request: HttpRequest) -> HttpResponse:
    user = access.user_of(request)
    if not access.is_instructor(user):
        raise PermissionDenied("Only instructors see the forks made of their lessons")
    return render(request, FORKS, {"forks": lessons.forks_of_lessons(user)})


# --- editing ----------------------------------------------------------------------------------


def edit_context(
    request, lesson, *, lesson_form=None, add_form=None, item_forms=None, question_form=None
) -> dict:
    """The edit page's context; a form given (refused) shows in place of its fresh one."""
    item_forms = item_forms or {}
    items = [
        (item, item_forms.get(item.pk) or ItemForm.of(item)) for item in lessons.items_of(lesson)
    ]
    for item, _ in items:
        item.asking = question_forms(item, question_form)
    return {
        "lesson": lesson,
        "lesson_form": lesson_form or LessonForm.of(lesson),
        "add_form": add_form or AddItemForm(request=request, lesson=lesson),
        "items": items,
        "max_items": lessons.MAX_ITEMS,
        "co_text": "\n".join(lesson.co_instructors.values_list("username", flat=True)),
    }


@require_http_methods(["GET", "POST"])
def lesson_edit(request: HttpRequest, lesson_id) -> HttpResponse:
    lesson = _lesson(request, lesson_id, need="change")
    if request.method == "GET":
        return render(request, EDIT, edit_context(request, lesson))
    form = LessonForm(request.POST)
    _, refused = _apply(form, lambda data: lessons.update_lesson(request, lesson, data))
    if refused is None and not request.htmx:
        return redirect("lesson-edit", lesson.pk)
    if refused is None:
        context = {"lesson": lesson, "lesson_form": LessonForm.of(lesson), "saved": True}
        return render(request, f"{EDIT}#lesson-form", context)
    if request.htmx:
        context = {"lesson": lesson, "lesson_form": form}
        return render(request, f"{EDIT}#lesson-form", context, status=422)
    lesson.refresh_from_db()
    return render(request, EDIT, edit_context(request, lesson, lesson_form=form), status=refused)


@require_POST
def lesson_co_instructors(request: HttpRequest, lesson_id) -> HttpResponse:
    """Who may present the lesson live too (the lesson's instructor names them)."""
    lesson = _lesson(request, lesson_id, need="change")
    text = request.POST.get("co_instructors", "")
    context = {"lesson": lesson, "co_text": text}
    try:
        lessons.set_co_instructors(request, lesson, text)
        context["co_saved"] = True
        status = 200
    except ServiceError as error:
        context["co_error"] = error
        status = 422 if request.htmx else 400
    if request.htmx:
        return render(request, f"{EDIT}#co-instructors", context, status=status)
    if status != 200:
        return render(request, EDIT, {**edit_context(request, lesson), **context}, status=status)
    return redirect("lesson-edit", lesson.pk)


@require_POST
def lesson_renew_link(request: HttpRequest, lesson_id) -> HttpResponse:
    lessons.renew_link(request, _lesson(request, lesson_id, need="change"))
    return _redirect(request, reverse("lesson", args=[lesson_id]))


@require_POST
def lesson_delete(request: HttpRequest, lesson_id) -> HttpResponse:
    lesson = _lesson(request, lesson_id, need="change")
    lessons.delete_lesson(request, lesson)
    return _redirect(request, reverse("lessons"))


def _items(request, lesson, refused: int | None = None, **forms) -> HttpResponse:
    """After an item action: the items section (htmx), else back to the edit page; a refusal
    shows the form again with its message."""
    if refused is None and not request.htmx:
        return redirect(reverse("lesson-edit", args=[lesson.pk]) + "#items")
    context = edit_context(request, lesson, **forms)
    if refused is None:
        return render(request, f"{EDIT}#items", context)
    template = f"{EDIT}#items" if request.htmx else EDIT
    return render(request, template, context, status=_refused(request, refused))


@require_POST
def item_add(request: HttpRequest, lesson_id) -> HttpResponse:
    lesson = _lesson(request, lesson_id, need="change")
    form = AddItemForm(request.POST, request=request, lesson=lesson)

    def add(data):
        prompts = data["suggested_prompts"]
        lessons.add_item(request, lesson, data["exploration"], data["note"], prompts)

    _, refused = _apply(form, add)
    return _items(request, lesson, refused, add_form=form if refused else None)


@require_POST
def item_update(request: HttpRequest, lesson_id, item_id) -> HttpResponse:
    lesson, item = _item(request, lesson_id, item_id)
    form = ItemForm(request.POST, auto_id=f"item-{item.pk}-%s")
    _, refused = _apply(
        form, lambda data: lessons.update_item(item, data["note"], data["suggested_prompts"])
    )
    return _items(request, lesson, refused, item_forms={item.pk: form} if refused else None)


@require_POST
def item_move(request: HttpRequest, lesson_id, item_id) -> HttpResponse:
    lesson, item = _item(request, lesson_id, item_id)
    try:
        lessons.move_item(item, request.POST.get("direction", ""))
    except ServiceError as error:
        return HttpResponse(error.message, status=400, content_type="text/plain")
    return _items(request, lesson)


@require_POST
def item_remove(request: HttpRequest, lesson_id, item_id) -> HttpResponse:
    lesson, item = _item(request, lesson_id, item_id)
    lessons.remove_item(item)
    return _items(request, lesson)
