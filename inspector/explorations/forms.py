"""The new-exploration form and the sampling sliders (the one definition the form and the
next-token panel share)."""

from django import forms
from django.conf import settings

from engine.constraints import CONSTRAINT_TYPES
from engine.params import PRESETS, SamplingParams
from inspector.compute import services

PRESET_CHOICES = [("", "custom"), *[(name, name) for name in PRESETS]]


CONSTRAINT_CHOICES = [("", "none"), *[(kind, kind.replace("_", " ")) for kind in CONSTRAINT_TYPES]]


def _slider(low: float, high: float, step: float) -> forms.NumberInput:
    return forms.NumberInput(attrs={"type": "range", "min": low, "max": high, "step": step})


# The sampling sliders, the one definition the new-exploration form and the next-token panel
# share: name, label, min, max, step (a whole step makes a whole-number field).
SLIDERS = (
    ("temperature", "Temperature", 0, 2, 0.05),
    ("top_k", "Top-k (0 = off)", 0, 100, 1),
    ("top_p", "Top-p (1 = off)", 0.05, 1, 0.01),
    ("min_p", "Min-p (0 = off)", 0, 0.5, 0.01),
    ("repetition_penalty", "Repetition penalty", 0.5, 2, 0.05),
    ("presence_penalty", "Presence penalty", -2, 2, 0.1),
    ("frequency_penalty", "Frequency penalty", -2, 2, 0.1),
)


def slider_field(name: str) -> forms.Field:
    """A form field for one of SLIDERS, starting at SamplingParams' default."""
    _, label, low, high, step = next(slider for slider in SLIDERS if slider[0] == name)
    field = forms.IntegerField if isinstance(step, int) else forms.FloatField
    initial = getattr(SamplingParams(), name)
    return field(initial=initial, label=label, widget=_slider(low, high, step))


class ExplorationForm(forms.Form):
    """The prompt form of a new exploration. It shapes the request, then the API's serializer
    validates it, so the page and the API accept and refuse exactly the same things."""

    model = forms.ChoiceField()
    prompt = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 3}))
    system_prompt = forms.CharField(required=False, strip=False)
    use_chat_template = forms.BooleanField(required=False, label="Use the chat template")
    preset = forms.ChoiceField(choices=PRESET_CHOICES, required=False)
    temperature = slider_field("temperature")
    top_k = slider_field("top_k")
    top_p = slider_field("top_p")
    min_p = slider_field("min_p")
    repetition_penalty = slider_field("repetition_penalty")
    presence_penalty = slider_field("presence_penalty")
    frequency_penalty = slider_field("frequency_penalty")
    seed = forms.IntegerField(initial=0)
    max_new_tokens = forms.IntegerField(initial=64, label="Max new tokens")
    stop = forms.CharField(
        required=False,
        strip=False,
        label="Stop sequences (one per line)",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    constraint_type = forms.ChoiceField(choices=CONSTRAINT_CHOICES, required=False)
    constraint_spec = forms.CharField(
        required=False,
        strip=False,
        label="Constraint",
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": "choice: one option per line · regex · Lark · JSON"}
        ),
    )

    PARAM_FIELDS = (
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "repetition_penalty",
        "presence_penalty",
        "frequency_penalty",
        "seed",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = services.model_choices()
        self.fields["model"].initial = settings.TOKENLENS_DEFAULT_MODEL
        # Which models have a chat template (None: not known until the model is prepared):
        # the box starts ticked where there is one, and the page greys it out where not.
        self.chat_templates = {
            entry["key"]: entry.get("has_chat_template") for entry in services.catalog_entries()
        }
        self.preset_values = {
            name: {key: value for key, value in preset.to_dict().items() if key != "seed"}
            for name, preset in PRESETS.items()
        }
        has_template = self.chat_templates.get(settings.TOKENLENS_DEFAULT_MODEL)
        self.fields["use_chat_template"].initial = bool(has_template)

    def payload(self) -> dict:
        """The API request this form stands for (call after is_valid())."""
        data = self.cleaned_data
        params = {name: data[name] for name in self.PARAM_FIELDS}
        if data.get("preset"):
            params = {**PRESETS[data["preset"]].to_dict(), "seed": data["seed"]}
        constraint = None
        if data.get("constraint_type"):
            spec = data["constraint_spec"]
            if data["constraint_type"] == "choice":
                spec = [line for line in spec.splitlines() if line]
            constraint = {"type": data["constraint_type"], "spec": spec}
        return {
            "model": data["model"],
            "prompt": data["prompt"],
            "system_prompt": data["system_prompt"],
            "use_chat_template": data["use_chat_template"],
            "params": params,
            "max_new_tokens": data["max_new_tokens"],
            "stop": [line for line in data["stop"].splitlines() if line],
            "constraint": constraint,
        }

    def add_api_error(self, field: str, message: str) -> None:
        """Show an API error (a dotted path like params.top_p) beside the right input."""
        name = field.split(".")[1] if field.startswith("params.") else field.split(".")[0]
        name = {"constraint": "constraint_spec"}.get(name, name)
        self.add_error(name if name in self.fields else None, message)
