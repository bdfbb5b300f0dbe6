"""The API's request and response shapes (DRF serializers); validation uses engine's torch-free
limits and parameters, so the page, the API and the worker accept the same things."""

from django.conf import settings
from rest_framework import serializers

from engine.constraints import CONSTRAINT_TYPES, Constraint, check_constraint
from engine.limits import ATTRIBUTION_METHODS as METHODS
from engine.limits import (
    DEFAULT_STEPS,
    ENCODINGS,
    MAX_CHOSEN,
    MAX_CLUSTERS,
    MAX_POSITIONS,
    MAX_SEED,
    MAX_STEPS,
    MAX_STOP_SEQUENCES,
    MAX_TOP_K,
    MAX_TOP_N,
)
from engine.params import SamplingParams
from engine.types import InputError
from inspector import services
from inspector.fields import (
    StrictCharField,
    StrictFloatField,
    StrictModelSerializer,
    storable_json,
)
from inspector.models import Branch, Exploration, Step

# A forced text is read token by token into the branch: a few paragraphs at most.
MAX_FORCED_CHARS = 4000


# The largest top_k accepted: far above any vocabulary TokenLens loads (262k for Gemma), and
# still a number the engine and the database handle; the engine treats a larger k as "all".
MAX_SAMPLING_TOP_K = 1_000_000


class ModelRequestSerializer(serializers.Serializer):
    """A request about one catalog model; unknown keys get a message listing the known ones."""

    model = serializers.ChoiceField(choices=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = services.model_choices()
        self.fields["model"].choices = choices
        known = ", ".join(key for key, _label in choices)
        self.fields["model"].error_messages["invalid_choice"] = (
            f"Unknown model {{input!r}}; choose one of: {known}"
        )


class TokenizeRequestSerializer(ModelRequestSerializer):
    text = StrictCharField(trim_whitespace=False)
    system_prompt = StrictCharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    use_chat_template = serializers.BooleanField(required=False, default=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["text"].max_length = settings.TOKENLENS_MAX_TEXT_CHARS

    def validate_text(self, text: str) -> str:
        if not text.strip():
            raise serializers.ValidationError("Type some text to tokenize (it is only whitespace)")
        if len(text) > settings.TOKENLENS_MAX_TEXT_CHARS:
            raise serializers.ValidationError(
                f"The text is too long: at most {settings.TOKENLENS_MAX_TEXT_CHARS:,} characters"
            )
        return text


class SamplingParamsSerializer(serializers.Serializer):
    """Decoding parameters; omitted ones take engine.sampling.SamplingParams' defaults, whose
    checks give each its range: temperature 0 (greedy) or 0.01 to 100, top_k a whole number
    from 0 (off) to MAX_SAMPLING_TOP_K, top_p above 0 to 1, min_p 0 to 1, repetition_penalty
    above 0 to 100, presence and frequency penalties -2 to 2, seed 0 to 2**63 - 1."""

    temperature = StrictFloatField(required=False)
    top_k = serializers.IntegerField(
        required=False,
        max_value=MAX_SAMPLING_TOP_K,
        error_messages={
            "max_value": f"top_k must be at most {MAX_SAMPLING_TOP_K:,} (0 means off)",
            "invalid": "top_k must be a whole number ≥ 0 (0 means off)",
        },
    )
    top_p = StrictFloatField(required=False)
    min_p = StrictFloatField(required=False)
    repetition_penalty = StrictFloatField(required=False)
    presence_penalty = StrictFloatField(required=False)
    frequency_penalty = StrictFloatField(required=False)
    greedy = serializers.BooleanField(required=False)
    seed = serializers.IntegerField(required=False)

    def validate(self, data):
        try:
            SamplingParams(**data)
        except InputError as exc:
            raise serializers.ValidationError({exc.field: exc.message}) from exc
        return dict(data)


class ConstraintSerializer(serializers.Serializer):
    """{"type": choice|regex|cfg|json_schema, "spec": ...}; the grammar is checked here too, so
    a bad regex, grammar or schema is a 400 before any model work."""

    type = serializers.ChoiceField(choices=CONSTRAINT_TYPES)
    spec = serializers.JSONField(validators=[storable_json])

    def validate(self, data):
        try:
            check_constraint(Constraint(data["type"], data["spec"]))
        except InputError as exc:
            raise serializers.ValidationError({"spec": exc.message}) from exc
        return dict(data)


class DistributionRequestSerializer(ModelRequestSerializer):
    prompt = StrictCharField(trim_whitespace=False)
    system_prompt = StrictCharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    use_chat_template = serializers.BooleanField(required=False, default=False)
    completion_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=0), required=False, default=list
    )
    params = SamplingParamsSerializer(required=False, default=dict)
    constraint = ConstraintSerializer(required=False, allow_null=True, default=None)
    top_n = serializers.IntegerField(required=False, default=20, min_value=1, max_value=MAX_TOP_N)

    def validate_prompt(self, prompt: str) -> str:
        if not prompt.strip():
            raise serializers.ValidationError("Type a prompt (it is empty or only whitespace)")
        return prompt


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
)


class StepSerializer(StrictModelSerializer):
    class Meta:
        model = Step
        fields = list(STEP_FIELDS)


class BranchSerializer(StrictModelSerializer):
    """A branch with its whole sequence (inherited steps first)."""

    steps = serializers.SerializerMethodField()
    length = serializers.IntegerField(read_only=True)

    class Meta:
        model = Branch
        fields = ["id", "label", "parent", "fork_index", "finish_reason", "length", "steps"]
        read_only_fields = ["id", "parent", "fork_index", "finish_reason"]

    def get_steps(self, branch: Branch) -> list[dict]:
        return StepSerializer(branch.sequence(), many=True).data


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


class SequenceRequestSerializer(TokenizeRequestSerializer):
    """An analysis of a text (a prompt), optionally followed by generated tokens as they are."""

    completion_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=0), required=False, default=list
    )


class AttentionRequestSerializer(SequenceRequestSerializer):
    """Attention of chosen layers (required) and heads (default: all)."""

    layers = serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=1)
    heads = serializers.ListField(
        child=serializers.IntegerField(min_value=0), required=False, default=list
    )
    encoding = serializers.ChoiceField(choices=ENCODINGS, default="uint8")


class HeadsRequestSerializer(SequenceRequestSerializer):
    """Head clustering: k clusters of every head's attention features; seed fixes the map."""

    k = serializers.IntegerField(required=False, default=4, min_value=1, max_value=MAX_CLUSTERS)
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_SEED)


class EmbeddingsRequestSerializer(SequenceRequestSerializer):
    """A token's embedding (token_id, default: the sequence's last token), the model's position
    encoding over n_positions positions, and a map of the sequence's embeddings."""

    token_id = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    n_positions = serializers.IntegerField(
        required=False, default=64, min_value=1, max_value=MAX_POSITIONS
    )


class LensRequestSerializer(SequenceRequestSerializer):
    """The logit lens at `position` (default: the last token; negative counts from the end):
    top_k tokens per layer, chosen_ids followed through every layer (default: the next token
    and the last layer's top-1), and an optional contrast [a, b] of two ids or texts."""

    position = serializers.IntegerField(required=False, allow_null=True, default=None)
    top_k = serializers.IntegerField(required=False, default=10, min_value=1, max_value=MAX_TOP_K)
    # Ids are checked against the model's vocabulary by the engine (field "chosen_ids").
    chosen_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, default=list, max_length=MAX_CHOSEN
    )
    contrast = serializers.JSONField(required=False, allow_null=True, default=None)

    def validate_contrast(self, pair):
        if pair is None:
            return None
        if not isinstance(pair, list) or len(pair) != 2:
            raise serializers.ValidationError("Give two tokens to contrast: [a, b]")
        for token in pair:
            whole = isinstance(token, int) and not isinstance(token, bool)
            if not (whole and token >= 0) and not (isinstance(token, str) and token):
                raise serializers.ValidationError(
                    f"Each token to contrast is a token id or a non-empty text, not {token!r}"
                )
        storable_json(pair)  # a lone surrogate would make the tokenizer fail
        return pair


class AttributionRequestSerializer(SequenceRequestSerializer):
    """Which tokens 0..position (default: the last) drove target_id as the next token, by
    method; n_steps is the integrated-gradients path's length. The engine checks target_id
    against the vocabulary and position against the sequence."""

    target_id = serializers.IntegerField(min_value=0)
    method = serializers.ChoiceField(choices=list(METHODS))
    position = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    n_steps = serializers.IntegerField(
        required=False, default=DEFAULT_STEPS, min_value=1, max_value=MAX_STEPS
    )


class VocabularyRequestSerializer(ModelRequestSerializer):
    """A word (or a token id, "1234" or "#1234") to look up in the model's vocabulary."""

    word = StrictCharField(max_length=200, trim_whitespace=False)
