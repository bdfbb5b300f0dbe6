"""Numbers and shapes for the charts drawn in templates (plain data, no plotting library)."""

from __future__ import annotations

import math

MAX_BITS = 16  # the chart's top: rarer tokens are drawn at full height
BAR_WIDTH = 10


PROBABILITY_BANDS = (0.8, 0.5, 0.2, 0.05)  # lower bounds of bands 0..3; band 4 is below 5 %


def band(probability) -> int:
    """0 (≥ 80 %) … 4 (< 5 %): the colour band of a token's probability."""
    for index, bound in enumerate(PROBABILITY_BANDS):
        if float(probability) >= bound:
            return index
    return len(PROBABILITY_BANDS)


def surprisal(steps) -> dict:
    """Per-token surprisal bars (−log₂ p_base) for an SVG 60 units high, with the sequence's
    total log-probability (nats) and perplexity (exp of the mean negative log-probability)."""
    bars, total = [], 0.0
    for position, step in enumerate(steps):
        probability = max(step.p_base, 1e-45)
        bits = -math.log2(probability)
        total += math.log(probability)
        height = min(bits, MAX_BITS) / MAX_BITS * 58 + 1
        bars.append(
            {
                "x": position * BAR_WIDTH + 1,
                "y": round(60 - height, 2),
                "w": BAR_WIDTH - 2,
                "h": round(height, 2),
                "band": band(step.p_base),
                "index": step.index,
                "text": step.text,
                "bits": f"{bits:.2f}",
            }
        )
    count = len(steps)
    return {
        "bars": bars,
        "width": max(count * BAR_WIDTH, 100),
        "total_logprob": f"{total:.2f}",
        "perplexity": f"{math.exp(-total / count):.2f}" if count else "–",
    }


def sequence_score(steps) -> dict:
    """Total log-probability (nats, under p_base) and perplexity of a run of steps."""
    total = sum(math.log(max(step.p_base, 1e-45)) for step in steps)
    count = len(steps)
    return {
        "count": count,
        "total_logprob": f"{total:.2f}",
        "perplexity": f"{math.exp(-total / count):.2f}" if count else "–",
    }


def divergence(first, second) -> int:
    """How many leading tokens two branches share."""
    shared = 0
    for mine, theirs in zip(first, second, strict=False):
        if mine.token_id != theirs.token_id:
            break
        shared += 1
    return shared
