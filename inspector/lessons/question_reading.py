"""What the lesson pages show of an item's questions: the instructor's question forms (edit
page), and for a reader each question with their answer and how much of the item's recorded
text they may see yet (the lesson page)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.db.models import Count

from inspector.accounts import access
from inspector.lessons import questions
from inspector.lessons.question_input import SAMPLING_STAGES, choices_from_lines
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
    token = forms.CharField(
        required=False,
        strip=False,
        max_length=100,
        label="Or, with the sampling stages as choices: the candidate token asked about "
        "(the right stage is read from the step's recording)",
    )

    def __init__(self, *args, steps: list[tuple[str, str]], prefix: str, **kwargs):
        super().__init__(*args, prefix=prefix, **kwargs)
        self.fields["step_index"].choices = steps

    @classmethod
    def of(cls, question: LessonQuestion, steps: list[tuple[str, str]]) -> QuestionForm:
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
            "token": question.token or "",
        }
        return cls(initial=initial, steps=steps, prefix=f"q{question.pk}")

    def data_for_service(self) -> dict:
        data = dict(self.cleaned_data)
        step = data.pop("step_index")
        data["step_index"] = int(step) if step else None
        choices, right = choices_from_lines(data.pop("choices"))
        if data["kind"] == Kind.MULTIPLE_CHOICE:
            data.update(choices=choices, correct=right)
        elif not data["token"]:
            data.pop("token")  # a blank field of another kind is no token named
        return data


def step_choices(item: LessonItem) -> list[tuple[str, str]]:
    """The item's main-branch steps as the step field offers them: read once per item, without
    their recorded candidates (every form of the item shares them)."""
    steps = [("", "— no step (answer at any time)")]
    recorded = item.exploration.root.sequence(with_candidates=False)
    return steps + [(str(step.index), f"#{step.index} {step.text!r}") for step in recorded]


def add_form(item: LessonItem, data=None, steps=None) -> QuestionForm:
    steps = step_choices(item) if steps is None else steps
    return QuestionForm(data, steps=steps, prefix=f"new{item.pk}")


def edit_form(question: LessonQuestion, data=None) -> QuestionForm:
    return QuestionForm(data, steps=step_choices(question.item), prefix=f"q{question.pk}")


# --- what a reader of the lesson page sees ----------------------------------------------------


@dataclass
class ItemQuestions:
    """The item's questions for this reader: (question, their answer or None, open now), and
    from which step on the text is hidden (None: nothing is)."""

    rows: list[tuple[LessonQuestion, QuestionAnswer | None, bool]] = field(default_factory=list)
    cut: int | None = None
    fork_id: object = None

    @property
    def hides(self) -> bool:
        """Whether a question still hides text from this reader: then the page offers no way
        to the exploration's own page (Open, Fork, their fork), which shows every step."""
        return self.cut is not None


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
    """The item's questions each with its edit form and how many answered, and the add form
    (`form` replaces the one it was made as, to show its errors)."""
    steps = step_choices(item)
    rows = []
    for question in questions.questions_of(item).annotate(answered=Count("answers")):
        shown = QuestionForm.of(question, steps)
        if form is not None and form.prefix == shown.prefix:
            shown = form
        rows.append((question, shown, question.answered))
    adding = form if form is not None and form.prefix == f"new{item.pk}" else None
    adding = adding or add_form(item, steps=steps)
    return {"question_rows": rows, "question_form": adding, "stages": "\n".join(SAMPLING_STAGES)}
