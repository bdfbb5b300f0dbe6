"""Template filters for tokens and probabilities: colour bands, percents, visible whitespace."""

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from inspector.explorations.charts import band

register = template.Library()
register.filter("band", band)

_VISIBLE = {
    " ": '<span class="ws" title="space">·</span>',
    "\t": '<span class="ws" title="tab">→</span>',
    "\n": '<span class="ws" title="newline">↵</span><br>',
    "\r": '<span class="ws" title="carriage return">␍</span>',
}


@register.filter
def visible_whitespace(text: str) -> str:
    """Escape text and draw spaces, tabs and newlines as visible marks."""
    return mark_safe("".join(_VISIBLE.get(char) or escape(char) for char in text))


@register.filter
def compact_count(number) -> str:
    """134515008 → "134.5 M"."""
    try:
        value = float(number)
    except (TypeError, ValueError):
        return ""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f} {suffix}"
    return f"{value:.0f}"


@register.filter
def percent(probability) -> str:
    value = float(probability) * 100
    if value == 0:
        return "0 %"
    return f"{value:.1f} %" if value >= 0.1 else f"{value:.2g} %"


@register.filter
def surprisal_bits(probability) -> str:
    import math

    value = float(probability)
    return "∞" if value <= 0 else f"{-math.log2(value):.2f}"
