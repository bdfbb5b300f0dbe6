"""Lesson question pages: the instructor's question forms on the edit page, a student's answers
on the lesson page (the item's text hidden from the step asked about until they answer), and
the instructors' page of the class's answers. Thin views over inspector.lessons.questions.

Every form posts to a real URL and redirects; with htmx an answer swaps its item in place and
a refusal comes back as 422 with its message.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inspector.errors import ServiceError, page_refusal
from inspector.lessons import questions
from inspector.lessons import services as lessons
from inspector.lessons import views as lesson_views
from inspector.lessons.question_reading import (
    QuestionForm,
    add_form,
    edit_form,
    question_forms,
)
from inspector.models import Lesson, LessonQuestion

PAGE = "inspector/lesson.html"
EDIT = "inspector/lesson_edit.html"
ANSWERS = "inspector/lesson_answers.html"
Kind = LessonQuestion.Kind
_lesson = lesson_views._lesson  # the lesson, or the page's 404/403


# --- answering --------------------------------------------------------------------------------


def _answer_data(question: LessonQuestion, post) -> dict:
    if question.kind != Kind.MULTIPLE_CHOICE:
        return {"text": post.get("text", "")}
    picked = []
    for value in post.getlist("picked"):
        picked.append(int(value) if value.strip().isdigit() else value)
    return {"picked": picked}


@require_POST
def question_answer(request: HttpRequest, lesson_id, question_id) -> HttpResponse:
    lesson = _lesson(request, lesson_id)
    question = _question_of(request, lesson, question_id)
    try:
        questions.require(request, lesson, "answer")
        questions.answer(request, question, _answer_data(question, request.POST))
        error = None
    except ServiceError as refused:
        if refused.status == 404:  # deleted while being answered
            raise page_refusal(refused) from None
        error = refused
    item_id = question.item_id
    if error is None and not request.htmx:
        return redirect(reverse("lesson", args=[lesson.pk]) + f"#item-{item_id}")
    return _item_fragment(request, lesson, item_id, error)


def _question_of(request, lesson: Lesson, question_id, need: str = "view") -> LessonQuestion:
    """The lesson's question (404 for one of another lesson, whatever the request may do with
    that one), if the request may `need` it."""
    try:
        question = questions.get_question(request, question_id)
        if question.item.lesson_id != lesson.pk:
            raise ServiceError("No such question in this lesson", field="question", status=404)
        questions.require(request, lesson, need)
    except ServiceError as error:
        raise page_refusal(error) from None
    return question


def _item_fragment(request, lesson: Lesson, item_id, error) -> HttpResponse:
    """The item's part of the lesson page again (htmx), or the whole page with the error."""
    context = lesson_views.page_context(request, lesson)
    context.update(answer_error=error, error_item=item_id)
    status = 200 if error is None else (422 if request.htmx else error.status)
    if not request.htmx:
        return render(request, PAGE, context, status=status)
    context["item"] = next((item for item in context["items"] if item.pk == item_id), None)
    if context["item"] is None:  # its item left the lesson meanwhile
        raise Http404("No such item in this lesson")
    return render(request, f"{PAGE}#lesson-item", context, status=status)


# --- the instructor's questions on the edit page ----------------------------------------------


def _editable(request, lesson_id, item_id=None, question_id=None):
    lesson = _lesson(request, lesson_id, need="change")
    if question_id is not None:
        question = _question_of(request, lesson, question_id, "edit")
        return lesson, question.item, question
    try:
        return lesson, lessons.get_item(lesson, item_id), None
    except ServiceError as error:
        raise page_refusal(error) from None


def _apply(form: QuestionForm, action) -> int | None:
    """Run the use-case with the form's data; the refusal's status (its message on its field)."""
    if not form.is_valid():
        return 400
    try:
        action(form.data_for_service())
    except ServiceError as error:
        where = error.field if error.field in form.fields else None
        form.add_error(where, error.message)
        return error.status
    return None


def _questions_part(request, lesson, item, refused, form=None) -> HttpResponse:
    """After a question action: the item's questions part (htmx), else back to the edit page;
    a refusal shows its form again with the message."""
    if refused is None and not request.htmx:
        return redirect(reverse("lesson-edit", args=[lesson.pk]) + f"#questions-{item.pk}")
    if request.htmx:
        item.asking = question_forms(item, form)
        context = {"lesson": lesson, "item": item}
        return render(request, f"{EDIT}#questions", context, status=200 if refused is None else 422)
    context = lesson_views.edit_context(request, lesson, question_form=form)
    return render(request, EDIT, context, status=refused)


@require_POST
def question_add(request: HttpRequest, lesson_id, item_id) -> HttpResponse:
    lesson, item, _ = _editable(request, lesson_id, item_id=item_id)
    form = add_form(item, request.POST)
    refused = _apply(form, lambda data: questions.add_question(request, item, data))
    return _questions_part(request, lesson, item, refused, form if refused else None)


@require_POST
def question_update(request: HttpRequest, lesson_id, question_id) -> HttpResponse:
    lesson, item, question = _editable(request, lesson_id, question_id=question_id)
    form = edit_form(question, request.POST)
    refused = _apply(form, lambda data: questions.update_question(request, question, data))
    return _questions_part(request, lesson, item, refused, form if refused else None)


@require_POST
def question_delete(request: HttpRequest, lesson_id, question_id) -> HttpResponse:
    lesson, item, question = _editable(request, lesson_id, question_id=question_id)
    questions.delete_question(request, question)
    return _questions_part(request, lesson, item, None)


# --- the class's answers ----------------------------------------------------------------------


@require_GET
def lesson_answers(request: HttpRequest, lesson_id) -> HttpResponse:
    """Per question: the distribution (counts per answer, share right) and each student's."""
    lesson = _lesson(request, lesson_id)
    try:
        questions.require(request, lesson, "read_answers")
    except ServiceError as error:
        raise page_refusal(error) from None
    found = questions.lesson_questions(lesson).select_related("item__exploration")
    found = found.prefetch_related("answers__student")
    rows = [(question, questions.results(question), question.answers.all()) for question in found]
    context = {"lesson": lesson, "rows": rows, "owner": lesson.owner_id == request.user.pk}
    return render(request, ANSWERS, context)
