"""What the lesson pages show of an item's questions: the instructor's question forms (edit
page), and for a reader each question with their answer and how much of the item's recorded
text they may see yet (the lesson page)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms

from inspector.accounts import access
from inspector.lessons import questions
from inspector.lessons.question_input import SAMPLING_STAGES, choices_from_lines, main_steps
from inspector.models import Lesson, LessonItem, LessonQuestion, QuestionAnswer

Kind = LessonQuestion.Kind


class QuestionForm(forms.Form):
    """A question as the edit page writes it; inspector.lessons.question_input checks it."""

    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.NEXT_TOKEN)
    text = forms.CharField(
        label="Question", widget=forms.Textarea(attrs={"rows": 2, "maxlength": 500})
    )
    step_index = forms.ChoiceField(
        required=False,
        label="Asked before the step (hidden until answered; the answer of “which token "
        "comes next?”)",
    )
    choices = forms.CharField(
        required=False,
        label="Choices (multiple choice only): one per line, start the right one(s) with *",
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def __init__(self, *args, item: LessonItem, prefix: str, **kwargs):
        super().__init__(*args, prefix=prefix, **kwargs)
        steps = [("", "— no step (answer at any time)")]
        steps += [(str(step.index), f"#{step.index} {step.text!r}") for step in main_steps(item)]
        self.fields["step_index"].choices = steps

    @classmethod
    def of(cls, question: LessonQuestion) -> QuestionForm:
        lines = [
            f"* {choice}" if index in question.correct else choice
            for index, choice in enumerate(question.choices)
        ]
        multiple = question.kind == Kind.MULTIPLE_CHOICE
        initial = {
            "kind": question.kind,
            "text": question.text,
            "step_index": "" if question.step_index is None else str(question.step_index),
            "choices": "\n".join(lines) if multiple else "",
        }
        return cls(initial=initial, item=question.item, prefix=f"q{question.pk}")

    def data_for_service(self) -> dict:
        data = dict(self.cleaned_data)
        step = data.pop("step_index")
        data["step_index"] = int(step) if step else None
        choices, right = choices_from_lines(data.pop("choices"))
        if data["kind"] == Kind.MULTIPLE_CHOICE:
            data.update(choices=choices, correct=right)
        return data


def add_form(item: LessonItem, data=None) -> QuestionForm:
    return QuestionForm(data, item=item, prefix=f"new{item.pk}")


# --- what a reader of the lesson page sees ----------------------------------------------------


@dataclass
class ItemQuestions:
    """The item's questions for this reader: (question, their answer or None, open now), and
    from which step on the text is hidden (None: nothing is)."""

    rows: list[tuple[LessonQuestion, QuestionAnswer | None, bool]] = field(default_factory=list)
    cut: int | None = None
    fork_id: object = None


def annotate_items(request, lesson: Lesson, items: list[LessonItem]) -> access.QuestionRights:
    """Give each item `asked` (ItemQuestions) and `shown` (its recorded steps this reader may
    see): the lesson's instructors see everything; anyone else sees the text up to the first
    question they have not answered that hides a step."""
    rights = access.question_rights(request, lesson)
    found = list(questions.lesson_questions(lesson))
    teaches = rights.read_answers or rights.edit
    mine = {} if teaches else questions.answers_by_question(access.user_of(request), found)
    for item in items:
        own = [question for question in found if question.item_id == item.pk]
        hiding = [q.step_index for q in own if q.step_index is not None and q.pk not in mine]
        cut = None if teaches or not hiding else min(hiding)
        rows = [(q, mine.get(q.pk), q.step_index is None or q.step_index == cut) for q in own]
        answered = [answer for answer in mine.values() if answer.question.item_id == item.pk]
        fork = answered[-1].fork_id if answered else None
        item.asked = ItemQuestions(rows, cut, fork)
        item.shown = item.recorded if cut is None else item.recorded[:cut]
        item.hidden = len(item.recorded) - len(item.shown)
    return rights


def question_forms(item: LessonItem, form: QuestionForm | None = None) -> dict:
    """The item's questions each with its edit form, and the add form (`form` replaces the
    one it was made as, to show its errors)."""
    rows = []
    for question in questions.questions_of(item):
        shown = QuestionForm.of(question)
        if form is not None and form.prefix == shown.prefix:
            shown = form
        rows.append((question, shown, question.answers.count()))
    adding = form if form is not None and form.prefix == f"new{item.pk}" else add_form(item)
    return {"question_rows": rows, "question_form": adding, "stages": "\n".join(SAMPLING_STAGES)}
