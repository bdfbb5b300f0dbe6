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


ENTROPY_HEIGHT = 60


def _bits(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def entropy_line(steps) -> dict | None:
    """Per step, the entropy (bits) of the model's own distribution and of what was sampled
    from, as polylines under the surprisal bars (same x scale), with "tokens in play" (2^H)
    per point; None when no step recorded its entropies."""
    points = []
    for position, step in enumerate(steps):
        base = _bits(getattr(step, "entropy_base_bits", None))
        final = _bits(getattr(step, "entropy_bits", None))
        if base is not None and final is not None:
            points.append((position, step, base, final))
    if not points:
        return None
    top = max(1.0, math.ceil(max(max(base, final) for _, _, base, final in points)))

    def y(bits: float) -> float:
        return round(ENTROPY_HEIGHT - 2 - bits / top * (ENTROPY_HEIGHT - 4), 2)

    def x(position: int) -> float:
        return position * BAR_WIDTH + BAR_WIDTH / 2

    return {
        "base": " ".join(f"{x(p)},{y(base)}" for p, _, base, _ in points),
        "final": " ".join(f"{x(p)},{y(final)}" for p, _, _, final in points),
        "points": [
            {
                "left": p * BAR_WIDTH,
                "index": step.index,
                "text": step.text,
                "bits": f"{final:.2f}",
                "base_bits": f"{base:.2f}",
                "in_play": f"{2**final:.1f}",
                "base_in_play": f"{2**base:.1f}",
            }
            for p, step, base, final in points
        ],
        "top": top,
        "height": ENTROPY_HEIGHT,
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
