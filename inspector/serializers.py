from django.conf import settings
from rest_framework import serializers

from engine.constraints import CONSTRAINT_TYPES, Constraint, check_constraint
from engine.distribution import MAX_TOP_N
from engine.sampling import SamplingParams
from engine.types import InputError
from inspector import services


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
    text = serializers.CharField(trim_whitespace=False)
    system_prompt = serializers.CharField(
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
    """Decoding parameters; omitted ones take engine.sampling.SamplingParams' defaults."""

    temperature = serializers.FloatField(required=False)
    top_k = serializers.IntegerField(required=False)
    top_p = serializers.FloatField(required=False)
    min_p = serializers.FloatField(required=False)
    repetition_penalty = serializers.FloatField(required=False)
    presence_penalty = serializers.FloatField(required=False)
    frequency_penalty = serializers.FloatField(required=False)
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
    spec = serializers.JSONField()

    def validate(self, data):
        try:
            check_constraint(Constraint(data["type"], data["spec"]))
        except InputError as exc:
            raise serializers.ValidationError({"spec": exc.message}) from exc
        return dict(data)


class DistributionRequestSerializer(ModelRequestSerializer):
    prompt = serializers.CharField(trim_whitespace=False)
    system_prompt = serializers.CharField(
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
