"""Replay under batching: how often a step's token differs when it is computed in one batched
pass with other students' branches instead of alone, on the same prefix with the same seed and
parameters (the product promises the same token for both).

Run: `make bench` (or .venv/bin/python bench/replay.py [--quick]). BRANCHES branches (different
prompts, the four presets, different seeds) step STEPS tokens together in batched passes
(`Stepper.step_many`, as the worker's scheduler runs them); then every one of those steps is
computed again alone, by a Stepper with its own caches, on the prefix the batch had. Prints,
per model: steps compared, steps whose token differs, and the largest difference in p_base
and p_final of any recorded candidate.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402
from quick import pick  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from stepping import branch_requests  # noqa: E402

from engine.loading import PACKAGED_MODELS, load, pick_device  # noqa: E402
from engine.stepping import Stepper  # noqa: E402

BRANCHES = pick(32, 4)
STEPS = pick(24, 3)


def batched_then_alone(loaded) -> tuple[int, int, float, float]:
    """(steps compared, tokens that differ, largest |Δp_base|, largest |Δp_final|)."""
    together, alone = Stepper(loaded, 4 << 30), Stepper(loaded, 4 << 30)
    requests = branch_requests(loaded, BRANCHES, "replay")
    completions = {request.branch: () for request in requests}
    compared = differ = 0
    worst_base = worst_final = 0.0
    for _ in range(STEPS):
        current = [replace(r, completion_ids=completions[r.branch]) for r in requests]
        for request, batched in zip(current, together.step_many(current), strict=True):
            single = alone.step(request)
            mine, theirs = batched.tokens[0], single.tokens[0]
            compared += 1
            differ += mine.id != theirs.id
            base, final = _largest_differences(mine.distribution, theirs.distribution)
            worst_base, worst_final = max(worst_base, base), max(worst_final, final)
            completions[request.branch] += (mine.id,)
    return compared, differ, worst_base, worst_final


def _largest_differences(first, second) -> tuple[float, float]:
    """Over the candidates both recorded: the largest |Δp_base| and |Δp_final|."""
    theirs = {candidate.id: candidate for candidate in second.candidates}
    base = final = 0.0
    for candidate in first.candidates:
        other = theirs.get(candidate.id)
        if other is not None:
            base = max(base, abs(candidate.p_base - other.p_base))
            final = max(final, abs(candidate.p_final - other.p_final))
    return base, final


def main() -> int:
    print(f"Replay under batching: {BRANCHES} branches × {STEPS} steps, batched against alone.")
    print()
    print("| model | steps compared | tokens that differ | largest Δp_base | largest Δp_final |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for spec in PACKAGED_MODELS:
        loaded = load(spec, settings.TOKENLENS_MODEL_CACHE, pick_device())
        compared, differ, base, final = batched_then_alone(loaded)
        print(
            f"| {spec.key} | {compared} | {differ} ({differ / compared:.2%}) | "
            f"{base:.1e} | {final:.1e} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
