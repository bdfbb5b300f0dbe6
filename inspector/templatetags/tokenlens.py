from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

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


PROBABILITY_BANDS = (0.8, 0.5, 0.2, 0.05)  # lower bounds of bands 0..3; band 4 is below 5 %


@register.filter
def band(probability) -> int:
    """0 (≥ 80 %) … 4 (< 5 %): the colour band of a token's probability."""
    for index, bound in enumerate(PROBABILITY_BANDS):
        if float(probability) >= bound:
            return index
    return len(PROBABILITY_BANDS)


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
