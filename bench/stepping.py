"""Stepping speed: our cached stepping against bare `generate`, the naive recomputation, and
batched branches against the same steps one by one.

Run: `make bench` (or .venv/bin/python bench/stepping.py [model-key ...]). Prints a markdown
table per model; the machine is noisy, so read the ratios (each measured in the same run).
Targets: stepping ≥ 0.95× bare generate; ≥ 8× the naive approach at 512 tokens of context;
batched ≥ 5× one by one at 8 branches (different prompts, the four presets, different seeds;
every step records the top-20 with p_base and p_final, one by one as batched).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402
from quick import QUICK, pick  # noqa: E402

django.setup()

import torch  # noqa: E402
from django.conf import settings  # noqa: E402

from engine.distribution import next_token_logits, prompt_ids, summarize  # noqa: E402
from engine.loading import PACKAGED_MODELS, load, pick_device  # noqa: E402
from engine.output import unembed_choices  # noqa: E402
from engine.params import PRESETS, SamplingParams  # noqa: E402
from engine.sampling import run_pipeline  # noqa: E402
from engine.stepping import Stepper, StepRequest  # noqa: E402

NEW_TOKENS = pick(128, 8)
LONG_CONTEXT = pick(512, 64)
LONG_NEW_TOKENS = pick(32, 4)
NAIVE_STEPS = pick(4, 1)
BATCH_STEPS = pick(16, 2)
BATCH_SIZES = pick((8, 32), (4,))
GREEDY = SamplingParams(temperature=0.0)
STORY = (
    "The lighthouse keeper climbed the spiral stairs every evening, counting the steps as his "
    "father had taught him, and wrote the weather in a book that nobody ever read. "
)
# Branches in a classroom use the presets the product offers, each with its own seed.
PRESET_CYCLE = ("balanced", "creative", "reliable", "greedy")
PROMPTS = [
    "Once upon a time",
    "The recipe for bread is simple:",
    "In 1905, a young clerk in Bern",
    "Dear diary, today I",
    "The three laws of motion",
    "Rain fell on the city of",
    "To install the package, first",
    "My favourite animal is the octopus because",
]


def rate(tokens: int, seconds: float) -> float:
    return tokens / seconds


def timed(function) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def ours(stepper: Stepper, ids: tuple[int, ...], new_tokens: int, branch: str) -> int:
    request = StepRequest(branch, ids, params=GREEDY, top_n=20, max_new_tokens=new_tokens)
    results = stepper.generate(request)
    return sum(len(result.tokens) for result in results)


def bare_generate(loaded, ids: tuple[int, ...], new_tokens: int) -> None:
    with torch.inference_mode():
        loaded.model.generate(
            torch.tensor([ids], device=loaded.device),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
        )


def plain_forward_logits(loaded, context: list[int]) -> torch.Tensor:
    """`model(ids)` as a plain call makes it: logits at every position, the last one used."""
    with torch.inference_mode():
        output = loaded.model(input_ids=torch.tensor([context], device=loaded.device))
    return output.logits[0, -1].float().cpu()


def naive(loaded, ids: tuple[int, ...], steps: int, last_only: bool) -> None:
    """A full forward pass over the whole prefix every step, recording the same top-20.
    last_only: the stricter variant that computes logits for the last position only."""
    forward = next_token_logits if last_only else plain_forward_logits
    context = list(ids)
    for _ in range(steps):
        result = run_pipeline(forward(loaded, context), GREEDY)
        token = int(result.p_final.argmax())
        summarize(result, loaded.tokenizer, 20, token)
        context.append(token)


def branch_requests(loaded, count: int, tag: str) -> list[StepRequest]:
    requests = []
    for index in range(count):
        prompt = PROMPTS[index % len(PROMPTS)] + " " * (index // len(PROMPTS))
        preset = PRESETS[PRESET_CYCLE[index % len(PRESET_CYCLE)]]
        params = replace(preset, seed=index)
        ids = tuple(prompt_ids(loaded, prompt, None, False))
        requests.append(StepRequest(f"{tag}-{index}", ids, params=params, top_n=20))
    return requests


def run_branches(stepper: Stepper, requests: list[StepRequest], batched: bool) -> int:
    completions = {request.branch: () for request in requests}
    for _ in range(BATCH_STEPS):
        current = [
            StepRequest(**{**request.__dict__, "completion_ids": completions[request.branch]})
            for request in requests
        ]
        results = stepper.step_many(current) if batched else [stepper.step(r) for r in current]
        for result in results:
            completions[result.branch] += tuple(token.id for token in result.tokens)
    return BATCH_STEPS * len(requests)


def bench_model(spec) -> list[tuple[str, str, str]]:
    loaded = load(spec, settings.TOKENLENS_MODEL_CACHE, pick_device())
    stepper = Stepper(loaded, 4 << 30)
    short = tuple(prompt_ids(loaded, PROMPTS[0], None, False))
    long_text = STORY * 40
    long_ids = tuple(prompt_ids(loaded, long_text, None, False))[:LONG_CONTEXT]
    bare_generate(loaded, short, 4)  # warm-up
    ours(stepper, short, 4, "warm")

    produced, ours_s = timed(lambda: ours(stepper, short, NEW_TOKENS, "short"))
    _, bare_s = timed(lambda: bare_generate(loaded, short, produced))
    long_produced, long_s = timed(lambda: ours(stepper, long_ids, LONG_NEW_TOKENS, "long"))
    _, naive_s = timed(lambda: naive(loaded, long_ids, NAIVE_STEPS, last_only=False))
    _, strict_s = timed(lambda: naive(loaded, long_ids, NAIVE_STEPS, last_only=True))
    bare_rate, ours_rate = rate(produced, bare_s), rate(produced, ours_s)
    long_rate, naive_rate = rate(long_produced, long_s), rate(NAIVE_STEPS, naive_s)
    strict_rate = rate(NAIVE_STEPS, strict_s)
    rows = [
        ("bare generate, greedy", f"{bare_rate:.1f}", "1.00× (reference)"),
        (
            "our stepping, greedy + top-20 recorded",
            f"{ours_rate:.1f}",
            f"{ours_rate / bare_rate:.2f}× bare generate",
        ),
        (f"our stepping at {LONG_CONTEXT} tokens of context", f"{long_rate:.1f}", ""),
        (
            f"naive: a plain full forward every step at {LONG_CONTEXT}",
            f"{naive_rate:.2f}",
            f"ours is {long_rate / naive_rate:.1f}× faster",
        ),
        (
            f"naive, stricter: full forward, last-position logits only, at {LONG_CONTEXT}",
            f"{strict_rate:.2f}",
            f"ours is {long_rate / strict_rate:.1f}× faster",
        ),
    ]
    for count in BATCH_SIZES:
        requests = branch_requests(loaded, count, f"b{count}")
        run_branches(stepper, requests, batched=True)  # warm the caches' prompts alike
        stepper.cache.clear()
        tokens, one_s = timed(lambda r=requests: run_branches(stepper, r, batched=False))
        stepper.cache.clear()
        _, batch_s = timed(lambda r=requests: run_branches(stepper, r, batched=True))
        one_rate, batch_rate = rate(tokens, one_s), rate(tokens, batch_s)
        rows.append((f"{count} branches one by one", f"{one_rate:.1f}", ""))
        rows.append(
            (f"{count} branches batched", f"{batch_rate:.1f}", f"{batch_rate / one_rate:.1f}×")
        )
    return rows


def main(keys: list[str]) -> None:
    torch.set_grad_enabled(False)
    keys = keys or (["smollm2-135m-instruct"] if QUICK else [])
    specs = [spec for spec in PACKAGED_MODELS if not keys or spec.key in keys]
    print(f"Greedy runs: {NEW_TOKENS} new tokens (fewer if the model ends first, on both sides).")
    print()
    print("| model | measure | tokens/s | ratio |")
    print("| --- | --- | ---: | ---: |")
    for spec in specs:
        for measure, tokens_per_s, ratio in bench_model(spec):
            print(f"| {spec.key} | {measure} | {tokens_per_s} | {ratio} |", flush=True)
    print()
    print("Unembedding path measured faster on this machine (engine.output.unembed):")
    for case, path in unembed_choices().items():
        print(f"- {case}: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
