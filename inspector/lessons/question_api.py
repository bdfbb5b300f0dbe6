"""REST API of lesson questions (the same use-cases as the pages: inspector.lessons.questions).

The lesson's instructor adds, changes and deletes questions; a signed-in reader answers each
once; the lesson's instructors read every answer and the distribution. Those who may not open
the lesson get 404, readers who ask for more 403. Errors are {"error": {"field", "message"}}.
"""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from inspector.accounts import access
from inspector.api.fields import StrictCharField
from inspector.api.schema import documented
from inspector.lessons import questions
from inspector.lessons import services as lessons
from inspector.lessons.question_input import MAX_QUESTION_CHARS
from inspector.models import LessonQuestion, QuestionAnswer


class QuestionWriteSerializer(serializers.Serializer):
    """A question as the instructor writes it (checked by inspector.lessons.question_input)."""

    kind = serializers.ChoiceField(choices=LessonQuestion.Kind.choices)
    text = StrictCharField(max_length=MAX_QUESTION_CHARS, help_text="The question")
    step_index = serializers.IntegerField(
        min_value=0,
        allow_null=True,
        required=False,
        help_text="The main branch's step hidden until answered (required for next_token)",
    )
    choices = serializers.ListField(
        child=StrictCharField(allow_blank=True), required=False, help_text="multiple_choice"
    )
    correct = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Indexes of right choices"
    )
    token = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
        max_length=100,
        help_text="multiple_choice with the sampling stages as choices: a recorded candidate "
        "of step_index; the right choice is the stage that removed it (or kept it)",
    )


class AnswerWriteSerializer(serializers.Serializer):
    text = StrictCharField(
        required=False,
        trim_whitespace=False,
        help_text="next_token: a token (a candidate's text, or typed); free_text: the answer",
    )
    picked = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="multiple_choice: indexes"
    )


class AnswerSerializer(serializers.ModelSerializer):
    student = serializers.CharField(source="student.get_username", read_only=True)
    fork = serializers.UUIDField(
        source="fork_id", read_only=True, allow_null=True, help_text="Null once deleted"
    )
    expected = serializers.SerializerMethodField(help_text="The right answer, now revealed")

    class Meta:
        model = QuestionAnswer
        fields = ["id", "question", "student", "text", "picked", "correct", "answered_at"]
        fields += ["fork", "expected"]
        read_only_fields = fields

    def get_expected(self, answer: QuestionAnswer) -> dict | None:
        return expected_of(answer.question)


class QuestionSerializer(serializers.ModelSerializer):
    """A question as a reader sees it: what is right only for the lesson's instructors and
    for those who answered it."""

    item = serializers.IntegerField(source="item_id", read_only=True)
    expected = serializers.SerializerMethodField(help_text="The right answer (see above)")
    your_answer = serializers.SerializerMethodField(help_text="Your answer, if you gave one")

    class Meta:
        model = LessonQuestion
        fields = ["id", "item", "position", "kind", "text", "step_index", "choices", "token"]
        fields += ["expected", "your_answer"]
        read_only_fields = fields

    def _mine(self, question) -> QuestionAnswer | None:
        return self.context.get("mine", {}).get(question.pk)

    def get_expected(self, question: LessonQuestion) -> dict | None:
        teaches = self.context.get("read_answers", False)
        return expected_of(question) if teaches or self._mine(question) else None

    def get_your_answer(self, question: LessonQuestion) -> dict | None:
        mine = self._mine(question)
        return AnswerSerializer(mine).data if mine else None


def expected_of(question: LessonQuestion) -> dict | None:
    """next_token: the recorded token and its p_base; multiple_choice: the right indexes."""
    if question.kind == LessonQuestion.Kind.NEXT_TOKEN:
        recorded = question.recorded
        return {
            "text": recorded["text"],
            "token_id": recorded["token_id"],
            "p_base": recorded["p_base"],
        }
    if question.kind == LessonQuestion.Kind.MULTIPLE_CHOICE:
        return {"correct": question.correct}
    return None


def _body(request, found, many: bool = False):
    found_list = list(found) if many else [found]
    lesson = found_list[0].item.lesson if found_list else None
    rights = access.question_rights(request, lesson) if lesson else access.QuestionRights()
    mine = questions.answers_by_question(access.user_of(request), found_list)
    context = {"mine": mine, "read_answers": rights.read_answers}
    return QuestionSerializer(found, many=many, context=context).data


@documented(response=QuestionSerializer(many=True), methods=["GET"])
@documented(QuestionWriteSerializer, QuestionSerializer, status=201, methods=["POST"])
@api_view(["GET", "POST"])
def item_questions(request, lesson_id, item_id):
    """An item's questions (GET, anyone who may open the lesson), or a new one (POST, the
    lesson's instructor)."""
    need = "edit" if request.method == "POST" else "view"
    lesson = lessons.get_lesson(request, lesson_id)
    questions.require(request, lesson, need)
    item = lessons.get_item(lesson, item_id)
    if request.method == "GET":
        return Response(_body(request, questions.questions_of(item), many=True))
    serializer = QuestionWriteSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    question = questions.add_question(request, item, dict(serializer.validated_data))
    return Response(_body(request, question), status=status.HTTP_201_CREATED)


@documented(response=QuestionSerializer, methods=["GET"])
@documented(QuestionWriteSerializer, QuestionSerializer, methods=["PATCH"])
@documented(response=None, status=204, methods=["DELETE"])
@api_view(["GET", "PATCH", "DELETE"])
def question_detail(request, question_id):
    """A question (GET); change it (PATCH: once answered, its wording only) or delete it and
    its answers (DELETE), the lesson's instructor only."""
    need = "view" if request.method == "GET" else "edit"
    question = questions.get_question(request, question_id, need)
    if request.method == "DELETE":
        questions.delete_question(request, question)
        return Response(status=status.HTTP_204_NO_CONTENT)
    if request.method == "PATCH":
        serializer = QuestionWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        questions.update_question(request, question, dict(serializer.validated_data))
    return Response(_body(request, question))


@documented(AnswerWriteSerializer, AnswerSerializer, status=201)
@api_view(["POST"])
def answer(request, question_id):
    """Answer a question (signed in; once: a second answer is 409). The answer comes back
    marked right or wrong with the right one, kept with your fork of the item."""
    question = questions.get_question(request, question_id, "answer")
    serializer = AnswerWriteSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    given = questions.answer(request, question, dict(serializer.validated_data))
    body = AnswerSerializer(given).data
    body["fork_url"] = request.build_absolute_uri(reverse("exploration", args=[given.fork_id]))
    return Response(body, status=status.HTTP_201_CREATED)


@documented(response=AnswerSerializer(many=True))
@api_view(["GET"])
def answers(request, question_id):
    """Every student's answer for the lesson's instructors; anyone else gets their own."""
    question = questions.get_question(request, question_id)
    return Response(AnswerSerializer(questions.answers_for(request, question), many=True).data)


@documented()
@api_view(["GET"])
def results(request, question_id):
    """The class's distribution (the lesson's instructors): how many answered, how many were
    right, and per answer (multiple choice: per choice) how many gave it."""
    question = questions.get_question(request, question_id, "read_answers")
    return Response(questions.results(question).to_dict())
