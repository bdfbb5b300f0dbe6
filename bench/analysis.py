"""Analysis speed: the logit lens and attribution at 64 and 256 tokens of text; integrated
gradients against the machine's floor (its matrix-multiply peak) and how well their default
path converges; a new worker's cold start (its first head map and tokenization against warm
ones).

Run: `make bench` (or .venv/bin/python bench/analysis.py [model-key ...]; `--cold-start
[model-key]` for the cold-start table alone). Prints markdown tables: the median and best of
RUNS timed calls after a warm-up, per model, length and measurement. `--floor` and
`--convergence` [model-key ...] print those integrated-gradients tables alone. Each measurement is a
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
    "Targets on CPU: logit lens ≤ 0.5 s at 256 tokens; an integrated-gradients step ≤ 1.3× "
    "its floor; the default path's |delta| ≤ 5 % of |f(text) − f(baseline)|; a new worker's "
    "first head map ≤ 2× a warm one."
)
POEM_PROMPT = "Write a short poem about the sea."  # with SmolLM2's chat template
POEM_TOKENS = pick(60, 8)  # generated, then the last one explained

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


# --- Integrated gradients: the floor and convergence ----------------------------------------


def gemm_peak(size: int = 2048, runs: int = 5) -> float:
    """FLOP/s of the best of `runs` float32 (size × size) @ (size × size) products, on the
    threads torch uses: the processor's matrix-multiply peak as torch reaches it."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # thread start-up, allocation
    return 2 * size**3 / min(timed(lambda: a @ b) for _ in range(runs))


def step_flops(loaded: LoadedModel, n_tokens: int) -> float:
    """The arithmetic of one integrated-gradients step over n_tokens: a forward pass (every
    linear layer of every decoder layer on every token; each head's two n × n attention
    products) and the backward pass to the input embeddings (each linear once more, with the
    weight transposed; attention's products twice: dQ, dK, dV and dP)."""
    layers = loaded.model.get_decoder().layers
    linear = sum(m.weight.numel() for m in layers.modules() if isinstance(m, torch.nn.Linear))
    config = loaded.model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 4 * n_tokens**2 * config.num_attention_heads * head_dim * len(layers)
    return 2 * (2 * linear * n_tokens) + attention + 2 * attention


GEMM_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")


def gemm_share(call: Callable[[], object]) -> tuple[float, float]:
    """(matrix multiplies, attention kernels) as shares of one profiled call's time (torch's
    profiler, self CPU time): what is left of a step is elementwise work (norms, rotary,
    activations and their gradients) and the framework."""
    from torch.profiler import ProfilerActivity, profile

    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        call()
    took = time.perf_counter() - started
    events = profiled.key_averages()
    gemm = sum(event.self_cpu_time_total for event in events if event.key in GEMM_OPS)
    attention = sum(event.self_cpu_time_total for event in events if "attention" in event.key)
    return min(1.0, gemm / 1e6 / took), min(1.0, attention / 1e6 / took)


def integrated_gradients_floor(specs, peak: float) -> None:
    print()
    print(
        f"Integrated gradients against the floor: float32 matrix-multiply peak {peak / 1e9:.0f} "
        f"GFLOP/s on {torch.get_num_threads()} threads; floor = a step's arithmetic ÷ that peak; "
        "32 steps, best of the runs; the matrix multiplies' and attention kernels' shares of a "
        "step from one profiled run."
    )
    print()
    print(
        "| model | tokens | GFLOP a step | floor s a step | s a step | × floor (≤ 1.3) "
        "| matrix multiplies | attention kernels | the rest |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in specs:
        loaded = load(spec, settings.TOKENLENS_MODEL_CACHE, pick_device())
        for length in LENGTHS:
            call = attribution_of("integrated_gradients", 32)(loaded, text_of(loaded, length))
            call()  # warm-up
            best = min(timed(call) for _ in range(RUNS)) / 32
            floor = step_flops(loaded, length) / peak
            gemm, attention = gemm_share(call)
            print(
                f"| {spec.key} | {length} | {floor * peak / 1e9:.1f} | {floor:.3f} | "
                f"{best:.3f} | {best / floor:.2f}× | {gemm:.0%} | {attention:.0%} | "
                f"{max(0.0, 1 - gemm - attention):.0%} |",
                flush=True,
            )
        bfloat16_row(loaded)


def bfloat16_row(loaded: LoadedModel) -> None:
    """The worker's bfloat16 check for this model, with the correlation measured even where
    an earlier test already refused it."""
    from engine.precision import correlation, forget_checks

    forget_checks()
    check = attribution.bfloat16_for(loaded)
    measured = correlation(*attribution.calibration_scores(loaded))
    verdict = "offered" if check.offered else f"not offered: {check.reason}"
    speed = "n/a" if check.speedup is None else f"{check.speedup:.2f}×"
    print(
        f"| {loaded.spec.key} | bfloat16 check | matrix multiply {speed} float32's | "
        f"integrated gradients r = {measured:.4f} (≥ 0.99) | {verdict} | | | | |",
        flush=True,
    )


def poem_question(loaded: LoadedModel) -> tuple[str, dict]:
    """The issue's case: SmolLM2's chat template, the poem prompt and POEM_TOKENS greedy
    tokens, the last of them explained."""
    options = {"use_chat_template": True}
    prompt = read_sequence(
        loaded.tokenizer,
        POEM_PROMPT,
        model_key=loaded.spec.key,
        context_length=0,
        use_chat_template=True,
    ).tokens
    ids = [token.id for token in prompt]
    with torch.inference_mode():
        written = loaded.model.generate(
            torch.tensor([ids]), max_new_tokens=POEM_TOKENS, do_sample=False
        )[0, len(ids) :].tolist()
    question = {
        "target_id": written[-1],
        "position": len(ids) + len(written) - 2,
        "completion_ids": written,
        **options,
    }
    return POEM_PROMPT, question


def convergence_cases(specs):
    """(model, case, loaded, text, question) for every model and length, plus the issue's
    chat-templated poem on the chat model."""
    for spec in specs:
        loaded = load(spec, settings.TOKENLENS_MODEL_CACHE, pick_device())
        for length in LENGTHS:
            text = text_of(loaded, length)
            ids = [token.id for token in tokens_of(loaded, text)]
            question = {"target_id": ids[-1], "position": len(ids) - 2}
            yield spec.key, f"story, {length} tokens", loaded, text, question
        if loaded.info.has_chat_template:
            text, question = poem_question(loaded)
            n = question["position"] + 2
            yield spec.key, f"chat poem, {n} tokens", loaded, text, question


def integrated_gradients_convergence(specs) -> None:
    print()
    print(
        "Integrated gradients: |delta| as a share of |f(text) − f(baseline)|, 32 fixed steps "
        "against the default (refined until the segments' |delta|s add up to ≤ 5 %)."
    )
    print()
    print(
        "| model | text | 32 steps: delta | default: steps | default: delta | "
        "default: bound | default s |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for key, case, loaded, text, question in convergence_cases(specs):
        ask = {"method": "integrated_gradients", **question}
        attribution.clear_cache()
        fixed = attribution.attribute(loaded, text, n_steps=32, **ask).path
        attribution.clear_cache()
        started = time.perf_counter()
        default = attribution.attribute(loaded, text, **ask).path
        took = time.perf_counter() - started
        change = abs(default.f_input - default.f_baseline)
        print(
            f"| {key} | {case} | {abs(fixed.convergence_delta) / change:.1%} | "
            f"{default.n_steps} | {abs(default.convergence_delta) / change:.1%} | "
            f"{default.delta_bound / change:.1%} | {took:.1f} |",
            flush=True,
        )


# --- Cold starts: a new worker process ---------------------------------------------------------

COLD_START_FLAG = "--cold-start-child"
COLD_TEXT = STORY * 2


def cold_start_child(key: str) -> None:
    """In a new process, as a worker starts: the warm-up, then the first head map and the first
    tokenization against the next ones. Prints one JSON line."""
    import json

    from worker.computations import compute, warm_up

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
    integrated_gradients_floor(specs, gemm_peak())
    integrated_gradients_convergence(specs)
    cold_start_table(specs[0].key)
    print()
    print(TARGETS)


if __name__ == "__main__":
    if sys.argv[1:2] == [COLD_START_FLAG]:
        cold_start_child(sys.argv[2])
    elif sys.argv[1:2] == ["--cold-start"]:  # that table alone: [model-key]
        cold_start_table((sys.argv[2:] or ["smollm2-135m-instruct"])[0])
    elif sys.argv[1:2] in (["--floor"], ["--convergence"]):  # that table alone: [model-key ...]
        chosen = [spec for spec in PACKAGED_MODELS if spec.key in sys.argv[2:] or not sys.argv[2:]]
        if sys.argv[1] == "--floor":
            integrated_gradients_floor(chosen, gemm_peak())
        else:
            integrated_gradients_convergence(chosen)
    else:
        main(sys.argv[1:])
