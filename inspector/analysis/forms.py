"""The tokens page's form: a text to tokenize with one of the catalog's models."""

from django import forms
from django.conf import settings

from inspector.compute import services


class TokenizeForm(forms.Form):
    model = forms.ChoiceField(
        error_messages={"invalid_choice": "Unknown model %(value)r: choose one from the list"}
    )
    text = forms.CharField(
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Type any text…"}),
        error_messages={"required": "Type some text to tokenize"},
    )
    use_chat_template = forms.BooleanField(required=False, label="Use the chat template")
    system_prompt = forms.CharField(
        required=False, strip=False, widget=forms.TextInput(attrs={"placeholder": "optional"})
    )
    page_id = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = services.model_choices()
        self.fields["model"].initial = settings.TOKENLENS_DEFAULT_MODEL
        self.fields["text"].max_length = settings.TOKENLENS_MAX_TEXT_CHARS
        self.fields["text"].error_messages["max_length"] = (
            f"The text is too long: at most {settings.TOKENLENS_MAX_TEXT_CHARS:,} characters"
        )

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        if not text.strip():
            raise forms.ValidationError("Type some text to tokenize (it is only whitespace)")
        return text

    def job_params(self) -> dict:
        data = self.cleaned_data
        return {
            "model": data["model"],
            "text": data["text"],
            "system_prompt": data["system_prompt"],
            "use_chat_template": data["use_chat_template"],
        }
