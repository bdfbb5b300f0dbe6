"""Request pieces every API feature shares: the catalog model a request is about, sampling
parameters and a constraint, validated as the engine will use them (engine's torch-free
parameters), so the page, the API and the worker accept the same things."""

from rest_framework import serializers

from engine.constraints import CONSTRAINT_TYPES, Constraint, check_constraint
from engine.params import SamplingParams
from engine.types import InputError
from inspector.api.fields import StrictFloatField, storable_json
from inspector.compute import services

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
