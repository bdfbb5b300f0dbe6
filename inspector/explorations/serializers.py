"""The API's shapes for explorations, branches and steps (DRF serializers), and the requests
that step, fork and rename them."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from engine.limits import MAX_STOP_SEQUENCES
from inspector.api.fields import StrictCharField, StrictModelSerializer
from inspector.api.serializers import (
    ConstraintSerializer,
    ModelRequestSerializer,
    SamplingParamsSerializer,
)
from inspector.explorations.conversation import turns_of
from inspector.models import Branch, Exploration, Step

# A forced text is read token by token into the branch: a few paragraphs at most.
MAX_FORCED_CHARS = 4000


# What a step records (the API's step objects and the export file's steps).
STEP_FIELDS = (
    "index",
    "token_id",
    "text",
    "piece",
    "mode",
    "p_base",
    "p_final",
    "rank",
    "distribution",
    "params",
    "elapsed_ms",
    "turn",
)


class StepSerializer(StrictModelSerializer):
    class Meta:
        model = Step
        fields = list(STEP_FIELDS)


class TurnSerializer(serializers.Serializer):
    """One message of a conversation; first_index/last_index: its tokens in the completion
    (null for the system prompt and the first user turn, which are the prompt)."""

    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    text = serializers.CharField()
    first_index = serializers.IntegerField(allow_null=True)
    last_index = serializers.IntegerField(allow_null=True)


class BranchSerializer(StrictModelSerializer):
    """A branch with its whole sequence (inherited steps first) and, for a chat exploration,
    the conversation it holds."""

    steps = serializers.SerializerMethodField()
    turns = serializers.SerializerMethodField()
    length = serializers.IntegerField(read_only=True)

    class Meta:
        model = Branch
        fields = [
            "id",
            "label",
            "parent",
            "fork_index",
            "finish_reason",
            "length",
            "steps",
            "turns",
        ]
        read_only_fields = ["id", "parent", "fork_index", "finish_reason"]

    def to_representation(self, branch: Branch) -> dict:
        self._sequence = branch.sequence()  # read once for its steps and its turns
        return super().to_representation(branch)

    def get_steps(self, branch: Branch) -> list[dict]:
        return StepSerializer(self._sequence, many=True).data

    @extend_schema_field(TurnSerializer(many=True))
    def get_turns(self, branch: Branch) -> list[dict]:
        return [turn.to_dict() for turn in turns_of(branch.exploration, self._sequence)]


class BranchSummarySerializer(StrictModelSerializer):
    length = serializers.IntegerField(read_only=True)

    class Meta:
        model = Branch
        fields = ["id", "label", "parent", "fork_index", "finish_reason", "length"]


class ExplorationSerializer(ModelRequestSerializer, StrictModelSerializer):
    """An exploration's settings. `model` names a catalog model; params, stop sequences and the
    constraint are validated as the engine will use them."""

    model = serializers.ChoiceField(choices=[], source="model_key")
    params = SamplingParamsSerializer(required=False, default=dict)
    constraint = ConstraintSerializer(required=False, allow_null=True, default=None)
    stop = serializers.ListField(
        child=StrictCharField(trim_whitespace=False, max_length=100),
        required=False,
        default=list,
        max_length=MAX_STOP_SEQUENCES,
    )
    max_new_tokens = serializers.IntegerField(
        required=False, default=128, min_value=1, max_value=4096
    )
    branches = BranchSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Exploration
        fields = [
            "id",
            "title",
            "model",
            "prompt",
            "system_prompt",
            "use_chat_template",
            "params",
            "max_new_tokens",
            "stop",
            "constraint",
            "imported",
            "branches",
            "created_at",
            "updated_at",
        ]
        # imported: made from a file, so its distributions were not recorded by this server
        read_only_fields = ["id", "imported", "created_at", "updated_at"]
        extra_kwargs = {"prompt": {"trim_whitespace": False}}

    def validate_prompt(self, prompt: str) -> str:
        if not prompt.strip():
            raise serializers.ValidationError("Type a prompt (it is empty or only whitespace)")
        limit = settings.TOKENLENS_MAX_PROMPT_CHARS
        if len(prompt) > limit:
            raise serializers.ValidationError(
                f"The prompt is too long: {len(prompt):,} characters, at most {limit:,}"
            )
        return prompt

    def validate_max_new_tokens(self, value: int) -> int:
        limit = settings.TOKENLENS_MAX_STEPS_PER_BRANCH
        if value > limit:
            raise serializers.ValidationError(f"At most {limit:,} new tokens per branch")
        return value


TOKEN_ID_MESSAGE = "A token id is a whole number ≥ 0"


class StepRequestSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=["sample", "greedy", "force"],
        default="sample",
        error_messages={"invalid_choice": "A step is sample, greedy or force, not {input!r}"},
    )
    token_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        error_messages={"invalid": TOKEN_ID_MESSAGE, "min_value": TOKEN_ID_MESSAGE},
    )
    text = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_FORCED_CHARS
    )

    def validate(self, data):
        if data["mode"] == "force" and data.get("token_id") is None and not data.get("text"):
            raise serializers.ValidationError({"token_id": "Give a token id or a text to force"})
        return data


class TurnRequestSerializer(serializers.Serializer):
    text = StrictCharField(trim_whitespace=False, max_length=MAX_FORCED_CHARS)

    def validate_text(self, text: str) -> str:
        if not text.strip():
            raise serializers.ValidationError("Type what you say to the model (it is empty)")
        return text


class TurnsAddedSerializer(serializers.Serializer):
    """The answer to a new turn: its steps and the conversation now."""

    steps = StepSerializer(many=True)
    turns = TurnSerializer(many=True)


class ForkRequestSerializer(serializers.Serializer):
    at_index = serializers.IntegerField(min_value=0)
    token_id = serializers.IntegerField(min_value=0)


class ExplorationTitleSerializer(StrictModelSerializer):
    """What may change after creation: the title (the rest is what the steps were made with)."""

    class Meta:
        model = Exploration
        fields = ["title"]


class BranchLabelSerializer(StrictModelSerializer):
    class Meta:
        model = Branch
        fields = ["label"]
