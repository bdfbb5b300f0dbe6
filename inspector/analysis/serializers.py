"""The analyses' request shapes (DRF serializers): a text or prompt, and what to compute about
it; ranges come from engine's torch-free limits."""

from django.conf import settings
from rest_framework import serializers

from engine.limits import ATTRIBUTION_METHODS as METHODS
from engine.limits import (
    DEFAULT_GRAPH_K,
    DEFAULT_GRAPH_MAX_EDGES,
    DEFAULT_GRAPH_THRESHOLD,
    DEFAULT_STEPS,
    ENCODINGS,
    GRAPH_RULES,
    MAX_CHOSEN,
    MAX_CLUSTERS,
    MAX_DRAWS,
    MAX_GRAPH_EDGES,
    MAX_GRAPH_K,
    MAX_POSITIONS,
    MAX_SEED,
    MAX_STEPS,
    MAX_TOP_K,
    MAX_TOP_N,
    MIN_GRAPH_THRESHOLD,
    PRECISIONS,
)
from inspector.api.fields import StrictCharField, StrictFloatField, storable_json
from inspector.api.serializers import (
    ConstraintSerializer,
    ModelRequestSerializer,
    SamplingParamsSerializer,
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


class SamplingRequestSerializer(DistributionRequestSerializer):
    """The next token's sampling pipeline taken apart, with `draws` seeded draws per rule."""

    top_n = None
    draws = serializers.IntegerField(required=False, default=30, min_value=1, max_value=MAX_DRAWS)


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


class AttentionGraphRequestSerializer(SequenceRequestSerializer):
    """The strongest attention links of layers first_layer..last_layer (default: every
    layer) and heads (default: all), as edges: the k strongest keys of every query row
    (rule top_k) or every weight at or above threshold (rule threshold), of which the
    strongest max_edges are sent. The engine checks the layers and heads against the model."""

    first_layer = serializers.IntegerField(required=False, default=0, min_value=0)
    last_layer = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0
    )
    heads = serializers.ListField(
        child=serializers.IntegerField(min_value=0), required=False, default=list
    )
    rule = serializers.ChoiceField(choices=GRAPH_RULES, default="top_k")
    k = serializers.IntegerField(
        required=False, default=DEFAULT_GRAPH_K, min_value=1, max_value=MAX_GRAPH_K
    )
    threshold = StrictFloatField(
        required=False,
        default=DEFAULT_GRAPH_THRESHOLD,
        min_value=MIN_GRAPH_THRESHOLD,
        max_value=1,
    )
    skip_first = serializers.BooleanField(
        required=False, default=False, help_text="leave out links to the first token (a sink)"
    )
    max_edges = serializers.IntegerField(
        required=False,
        default=DEFAULT_GRAPH_MAX_EDGES,
        min_value=1,
        max_value=MAX_GRAPH_EDGES,
        help_text="send the strongest this many of the links the rule lets through",
    )

    def validate(self, attrs):
        first, last = attrs.get("first_layer", 0), attrs.get("last_layer")
        if last is not None and first > last:
            raise serializers.ValidationError(
                {
                    "last_layer": f"The layer range runs from first_layer {first} up to "
                    f"last_layer {last}: the first may not come after the last"
                }
            )
        return super().validate(attrs)


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
    method; n_steps is the integrated-gradients path's length (left out or null: refined until
    its delta is at most 5 % of the change it explains). The engine checks target_id
    against the vocabulary and position against the sequence."""

    target_id = serializers.IntegerField(min_value=0)
    method = serializers.ChoiceField(choices=list(METHODS))
    position = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    n_steps = serializers.IntegerField(
        required=False, allow_null=True, default=DEFAULT_STEPS, min_value=1, max_value=MAX_STEPS
    )
    precision = serializers.ChoiceField(
        choices=list(PRECISIONS),
        default="float32",
        help_text="bfloat16 where the worker offers it for the model (else a 400 saying why)",
    )


class VocabularyRequestSerializer(ModelRequestSerializer):
    """A word (or a token id, "1234" or "#1234") to look up in the model's vocabulary."""

    word = StrictCharField(max_length=200, trim_whitespace=False)
