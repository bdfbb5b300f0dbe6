"""How much the sampling pipeline and the top-N summary add to one next-token forward pass.

Run: `make bench` (or .venv/bin/python bench/pipeline.py). Prints a markdown table; the machine
is noisy, so read the ratios (each measured in the same run), not the absolute times.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402
from quick import pick  # noqa: E402

django.setup()

import torch  # noqa: E402
from django.conf import settings  # noqa: E402

from engine.distribution import next_token_logits, prompt_ids, summarize  # noqa: E402
from engine.loading import PACKAGED_MODELS, load, pick_device  # noqa: E402
from engine.params import SamplingParams  # noqa: E402
from engine.sampling import choose, run_pipeline  # noqa: E402

PROMPT = "In a small village by the sea, the fishermen woke before dawn and " * 3
REPEATS = pick(7, 2)
SETTINGS = {
    "temperature only": SamplingParams(temperature=0.8),
    "top-p 0.9 (full sort)": SamplingParams(temperature=0.8, top_p=0.9),
    "top-k 40 + top-p + min-p": SamplingParams(temperature=0.8, top_k=40, top_p=0.9, min_p=0.02),
    "all penalties + top-p": SamplingParams(
        temperature=0.8,
        top_p=0.9,
        repetition_penalty=1.2,
        presence_penalty=0.5,
        frequency_penalty=0.5,
    ),
}


def median_ms(function) -> float:
    function()  # warm-up
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    torch.set_grad_enabled(False)
    print("| model | stage | median ms | × forward |")
    print("| --- | --- | ---: | ---: |")
    for spec in PACKAGED_MODELS:
        loaded = load(spec, settings.TOKENLENS_MODEL_CACHE, pick_device())
        ids = prompt_ids(loaded, PROMPT, None, False)
        context = torch.tensor(ids)
        forward = median_ms(lambda ids=ids, loaded=loaded: next_token_logits(loaded, ids))
        print(f"| {spec.label} | forward pass, {len(ids)} tokens | {forward:.1f} | 1.00 |")
        logits = next_token_logits(loaded, ids)
        for name, params in SETTINGS.items():

            def pipeline(params=params, logits=logits, loaded=loaded, context=context):
                result = run_pipeline(logits, params, context_ids=context, completion_ids=context)
                summarize(result, loaded.tokenizer, 20, choose(result, params, 0))

            cost = median_ms(pipeline)
            ratio = cost / forward
            print(f"| {spec.label} | pipeline + top-20: {name} | {cost:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
