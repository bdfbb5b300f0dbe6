from django.conf import settings
from rest_framework import serializers

from inspector import services


class TokenizeRequestSerializer(serializers.Serializer):
    model = serializers.ChoiceField(choices=[])
    text = serializers.CharField(trim_whitespace=False)
    system_prompt = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    use_chat_template = serializers.BooleanField(required=False, default=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = services.model_choices()
        known = ", ".join(key for key, _label in services.model_choices())
        self.fields["model"].error_messages["invalid_choice"] = (
            f"Unknown model {{input!r}}; choose one of: {known}"
        )
        self.fields["text"].max_length = settings.TOKENLENS_MAX_TEXT_CHARS

    def validate_text(self, text: str) -> str:
        if not text.strip():
            raise serializers.ValidationError("Type some text to tokenize (it is only whitespace)")
        if len(text) > settings.TOKENLENS_MAX_TEXT_CHARS:
            raise serializers.ValidationError(
                f"The text is too long: at most {settings.TOKENLENS_MAX_TEXT_CHARS:,} characters"
            )
        return text
