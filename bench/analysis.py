"""Analysis speed: the logit lens and attribution at 64 and 256 tokens of text, and a new
worker's cold start (its first head map and tokenization against warm ones). Integrated
gradients against the machine's floor and their convergence: bench/integrated_gradients.py.

Run: `make bench` (or .venv/bin/python bench/analysis.py [model-key ...]; `--cold-start
[model-key]` for the cold-start table alone). Prints markdown tables: the median and best of
RUNS timed calls after a warm-up, per model, length and measurement. Each measurement is a
(name, prepare) pair in MEASUREMENTS: prepare(loaded, text) does any untimed setup and returns
the zero-argument call to time, so adding a row is adding a pair.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")

import django  # noqa: E402
from quick import QUICK, pick  # noqa: E402

django.setup()

import torch  # noqa: E402
from django.conf import settings  # noqa: E402

from engine import attribution  # noqa: E402
from engine.distribution import next_token_logits  # noqa: E402
from engine.kvcache import PrefixCache  # noqa: E402
from engine.lens import logit_lens  # noqa: E402
from engine.loading import PACKAGED_MODELS, LoadedModel, load, pick_device  # noqa: E402
from engine.tokenization import read_sequence  # noqa: E402

LENGTHS = pick((64, 256), (16,))
RUNS = pick(3, 1)
STORY = (
    "The lighthouse keeper climbed the spiral stairs every evening, counting the steps as his "
    "father had taught him, and wrote the weather in a book that nobody ever read. "
)
TARGETS = (
    "Targets on CPU: logit lens ≤ 0.5 s at 256 tokens; a new worker's first head map ≤ 2× a "
    "warm one."
)

Prepare = Callable[[LoadedModel, str], Callable[[], object]]


def tokens_of(loaded: LoadedModel, text: str):
    return read_sequence(loaded.tokenizer, text, model_key=loaded.spec.key, context_length=0).tokens


def bare_forward(loaded: LoadedModel, text: str) -> Callable[[], object]:
    """The floor: one forward pass over the text, last-position logits only."""
    ids = [token.id for token in tokens_of(loaded, text)]
    return lambda: next_token_logits(loaded, ids)


def lens_cold(loaded: LoadedModel, text: str) -> Callable[[], object]:
    """The lens at the last token with nothing cached: a forward pass over the whole text."""
    return lambda: logit_lens(loaded, text)


def lens_cached_prefix(loaded: LoadedModel, text: str) -> Callable[[], object]:
    """The lens at the second-to-last token once the text's key/value states are cached (a
    saved branch's, or the lens's own from an earlier call): one token through the layers."""
    cache = PrefixCache(1 << 30)
    logit_lens(loaded, text, kv_cache=cache)
    return lambda: logit_lens(loaded, text, position=-2, kv_cache=cache)


def attribution_of(method: str, n_steps: int | None = 32) -> Prepare:
    """Explaining the text's last token by `method` (integrated gradients: n_steps, None for
    the default adaptive path), with the result cache emptied before every call so each one
    computes."""

    def prepare(loaded: LoadedModel, text: str) -> Callable[[], object]:
        ids = [token.id for token in tokens_of(loaded, text)]

        def call():
            attribution.clear_cache()
            return attribution.attribute(
                loaded,
                text,
                target_id=ids[-1],
                method=method,
                position=len(ids) - 2,
                n_steps=n_steps,
            )

        return call

    return prepare


MEASUREMENTS: list[tuple[str, Prepare]] = [
    ("reference: bare forward pass, last-position logits", bare_forward),
    ("logit lens, last token, nothing cached", lens_cold),
    ("logit lens, prefix cached (another position)", lens_cached_prefix),
    *(
        (
            f"attribution: {method}{' (32 steps)' * (method == 'integrated_gradients')}",
            attribution_of(method),
        )
        for method in attribution.METHODS
    ),
]


def text_of(loaded: LoadedModel, n_tokens: int) -> str:
    """A text of exactly n_tokens tokens as the model reads it (cut at a token boundary)."""
    long_text = STORY * (n_tokens // 20 + 2)
    return long_text[: tokens_of(loaded, long_text)[n_tokens - 1].end]


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def bench_length(loaded: LoadedModel, length: int) -> list[tuple[str, float, float]]:
    """(name, median, best) seconds per measurement. The measurements take turns, round after
    round, so a busy spell on a shared machine slows them all alike; the best is the closer
    to what a call costs alone."""
    text = text_of(loaded, length)
    calls = {name: prepare(loaded, text) for name, prepare in MEASUREMENTS}
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up
    for _ in range(RUNS):
        for name, call in calls.items():
            times[name].append(timed(call))
    return [(name, statistics.median(runs), min(runs)) for name, runs in times.items()]


# --- Cold starts: a new worker process ---------------------------------------------------------

COLD_START_FLAG = "--cold-start-child"
COLD_TEXT = STORY * 2


def cold_start_child(key: str) -> None:
    """In a new process, as a worker starts: the warm-up, then the first head map and the first
    tokenization against the next ones. Prints one JSON line."""
    import json

    from worker.computations import compute
    from worker.loaded import warm_up

    heads = {"model": key, "text": COLD_TEXT, "k": 4, "seed": 0}
    words = {"model": key, "text": COLD_TEXT}
    started = time.perf_counter()
    warm_up([key])
    figures = {"warm_up_s": time.perf_counter() - started}
    for kind, params in (("heads", heads), ("tokenize", words)):
        first = timed(lambda kind=kind, params=params: compute(kind, params))
        again = [timed(lambda kind=kind, params=params: compute(kind, params)) for _ in range(3)]
        figures[kind] = (first, statistics.median(again))
    print(json.dumps(figures))


def cold_start(key: str, numba_cache: str | None = None) -> dict:
    """cold_start_child's figures from a fresh interpreter (`numba_cache`: another folder, an
    empty one showing what a worker paid before the cache was kept)."""
    import json
    import subprocess

    env = dict(os.environ)
    if numba_cache:
        env["TOKENLENS_NUMBA_CACHE"] = numba_cache
    argv = [sys.executable, "-W", "ignore", __file__, COLD_START_FLAG, key]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_start_table(key: str) -> None:
    import tempfile

    rows = [("numba's cache kept (prepared by `make models`)", cold_start(key))]
    if not QUICK:
        with tempfile.TemporaryDirectory() as empty:
            rows.append(("no cache: numba compiles UMAP (before)", cold_start(key, empty)))
    print()
    print(f"Cold start of a new worker process ({key}): the first call after the worker's")
    print("warm-up against the median of the next three.")
    print()
    print(
        "| numba | warm-up s | first map s | warm map s | first map / warm (≤ 2) | "
        "first tokenize s | warm tokenize s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, figures in rows:
        (first_map, warm_map), (first_words, warm_words) = figures["heads"], figures["tokenize"]
        print(
            f"| {name} | {figures['warm_up_s']:.2f} | {first_map:.2f} | {warm_map:.2f} | "
            f"{first_map / warm_map:.1f}× | {first_words:.3f} | {warm_words:.3f} |",
            flush=True,
        )


def main(keys: list[str]) -> None:
    torch.set_grad_enabled(False)
    keys = keys or (["smollm2-135m-instruct"] if QUICK else [])
    specs = [spec for spec in PACKAGED_MODELS if not keys or spec.key in keys]
    print(f"{RUNS} runs after a warm-up; {torch.get_num_threads()} CPU threads.")
    print()
    print("| model | measure | tokens | median s | best s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for spec in specs:
        loaded = load(spec, settings.TOKENLENS_MODEL_CACHE, pick_device())
        for length in LENGTHS:
            for name, median, best in bench_length(loaded, length):
                print(f"| {spec.key} | {name} | {length} | {median:.3f} | {best:.3f} |", flush=True)
    cold_start_table(specs[0].key)
    print()
    print(TARGETS)


if __name__ == "__main__":
    if sys.argv[1:2] == [COLD_START_FLAG]:
        cold_start_child(sys.argv[2])
    elif sys.argv[1:2] == ["--cold-start"]:  # that table alone: [model-key]
        cold_start_table((sys.argv[2:] or ["smollm2-135m-instruct"])[0])
    else:
        main(sys.argv[1:])
