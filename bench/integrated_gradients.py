"""Integrated gradients: a step against the machine's floor (the step's arithmetic at the
measured float32 matrix-multiply peak, with the matrix multiplies' and attention kernels'
shares of it), each model's bfloat16 check, and how well the default path converges against
32 fixed steps (stories at 64 and 256 tokens; on the chat model, the poem its chat template
writes, its last token explained).

Run: `make bench` (or .venv/bin/python bench/integrated_gradients.py [--floor |
--convergence] [model-key ...]: one table alone). Prints markdown tables.
"""

from __future__ import annotations

# analysis (imported first) puts the project on the path and sets Django up.
import sys
import time
from collections.abc import Callable

import torch
from analysis import LENGTHS, RUNS, attribution_of, text_of, timed, tokens_of
from django.conf import settings
from quick import QUICK, pick

from engine import attribution
from engine.loading import PACKAGED_MODELS, LoadedModel, load, pick_device
from engine.tokenization import read_sequence

POEM_PROMPT = "Write a short poem about the sea."  # with SmolLM2's chat template
POEM_TOKENS = pick(60, 8)  # generated, then the last one explained
TARGETS = (
    "Targets on CPU: a step ≤ 1.3× its floor; the default path's |delta| ≤ 5 % of "
    "|f(text) − f(baseline)|; bfloat16 offered only where faster, at r ≥ 0.99."
)


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
        "against the default (refined until the delta and every segment's own are ≤ 5 %; the "
        "bound is the segments' |delta|s added up)."
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


def main(argv: list[str]) -> None:
    tables = [name for name in ("--floor", "--convergence") if name in argv] or [
        "--floor",
        "--convergence",
    ]
    keys = [arg for arg in argv if not arg.startswith("--")]
    keys = keys or (["smollm2-135m-instruct"] if QUICK else [])
    specs = [spec for spec in PACKAGED_MODELS if not keys or spec.key in keys]
    if "--floor" in tables:
        integrated_gradients_floor(specs, gemm_peak())
    if "--convergence" in tables:
        integrated_gradients_convergence(specs)
    print()
    print(TARGETS)


if __name__ == "__main__":
    main(sys.argv[1:])
