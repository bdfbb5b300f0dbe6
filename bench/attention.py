"""Attention as a user sees it: from pressing the Attention tab to a drawn heatmap, in Chromium.

Run: `make bench` (or .venv/bin/python bench/attention.py [model-key] [--graph-only]). Starts
the app in its
embedded mode on a free port (or uses TOKENLENS_BENCH_URL), creates an exploration whose prompt
is 128, 512 and 1024 tokens long, opens it in Chromium (Playwright), opens the Attention panel
and times: the request (model work + transfer + inflating), drawing one head's heatmap of layer
0, drawing all heads as small multiples, and switching to the last layer (the forward pass stops
after the layer asked for, so the last layer costs a whole pass). Payload = the response body
for one layer with all its heads. Targets at 512 tokens on CPU: ≤ 1.5 s request to drawn
heatmap, ≤ 1.5 MB per layer.

The 3-D attention graph at 256 tokens (always run; alone with --graph-only): for each setting
of the Attention graph tab, the links that met its rule and those sent (the page asks for the
strongest 4,000 at most), the response's bytes, the request (model + transfer) and the time
from the tab pressed (the first view) or the setting chosen (a redraw) to the scene drawn (the
frame after Plotly's newPlot). Target, in this headless Chromium whose WebGL runs in software
(about 2,000-4,000 arcs a second on 2 shared cores): the first view (layers 0–3) drawn in
≤ 3 s, every setting, the widest included, in ≤ 4 s (a third of it the model running 30
layers), ≤ 150 kB. Measured: 2.7 s first view, 3.6–3.8 s every layer, 93–96 kB.

Then, in this process, the model's side of a layer switch: the first request for a text (the
whole pass, keeping each layer's inputs), a switch to the last layer on the same text (that
layer alone on its kept inputs), what the switch cost before (a pass up to the last layer),
against that layer's own bare forward pass on the same inputs. Target: a switch at 512
tokens ≤ 1× one layer (what a switch adds is the hook that copies the maps out).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from quick import pick  # noqa: E402

from bench.streaming import Client, start_server  # noqa: E402

RUNS = pick(3, 1)
LENGTHS = pick((128, 512, 1024), (32,))
GRAPH_LENGTH = pick(256, 32)
GRAPH_ONLY = "--graph-only" in sys.argv
if GRAPH_ONLY:
    sys.argv.remove("--graph-only")
# The graph tab's settings timed: (what, the form's fields changed from its first view, in
# order: the last layer before the first, so the range is never upside down on the way).
GRAPH_CASES = (
    ("the first view: layers 0–3, every head, top-1", {}),
    ("layers 0–3, K/V group 0, top-3", {"heads": "kv0", "k": "3"}),
    ("layers 20–29, every head, top-2", {"last_layer": "29", "first_layer": "20", "k": "2"}),
    ("every layer and head, top-1", {"last_layer": "29"}),
    ("every layer and head, weight ≥ 0.3", {"last_layer": "29", "rule": "threshold"}),
    ("the widest: every layer and head, top-8", {"last_layer": "29", "k": "8"}),
)
SENTENCE = (
    "The keeper climbed the stairs at dusk, lit the great lamp, and wrote the state of the "
    "sea in his book before the ships came round the point. "
)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def prompt_of(client: Client, model: str, n_tokens: int) -> str:
    """A prompt of exactly n_tokens tokens (cut from repeated sentences at a token boundary)."""
    text = SENTENCE * (n_tokens // 20 + 2)
    tokens = client.post_json("/api/v1/tokenize/", {"model": model, "text": text})["tokens"]
    return text[: tokens[n_tokens - 1]["end"]]


def payload_bytes(client: Client, model: str, prompt: str) -> int:
    body = {"model": model, "text": prompt, "layers": [0]}
    return len(json.dumps(client.post_json("/api/v1/attention/", body)))


def time_panel(page, base: str, exploration_id: str) -> dict:
    page.goto(f"{base}/explore/{exploration_id}/")
    started = time.perf_counter()
    page.click("#tab-attention")
    page.wait_for_selector("#panel-attention [data-role=heatmap-box] .chart[data-rendered]")
    to_heatmap = time.perf_counter() - started
    timings = page.evaluate("window.tokenlensTimings")
    started = time.perf_counter()
    page.select_option("#panel-attention [data-role=view]", "all")
    page.wait_for_selector("#panel-attention [data-chart$=all-heads][data-rendered]")
    small_multiples = time.perf_counter() - started
    last = page.locator("#panel-attention [data-role=layer] option").last.get_attribute("value")
    started = time.perf_counter()
    page.select_option("#panel-attention [data-role=layer]", last)
    page.wait_for_selector(
        f"#panel-attention [data-chart=attention-layer{last}-all-heads][data-rendered]"
    )
    last_layer = time.perf_counter() - started
    return {
        "to_heatmap": to_heatmap,
        "small_multiples": small_multiples,
        "last_layer": last_layer,
        **timings,
    }


def time_graph(page, base: str, exploration_id: str, fields: dict) -> dict:
    """The Attention graph tab with `fields` chosen: tab pressed (or the last field changed)
    → scene drawn, the request alone as the page measured it, and the answer's bytes."""
    page.goto(f"{base}/explore/{exploration_id}/")
    panel = "#panel-graph"
    drawn = f"{panel} .chart[data-drawn]"
    actions = [lambda: page.click("#tab-graph")]
    for name, value in fields.items():
        actions.append(
            lambda name=name, value=value: page.select_option(f"{panel} [name={name}]", value)
        )
    for index, action in enumerate(actions):
        if index:
            page.wait_for_selector(drawn)
            page.evaluate(f"document.querySelector('{panel} .chart').removeAttribute('data-drawn')")
        with page.expect_response(lambda response: "/attention/graph/" in response.url) as answer:
            started = time.perf_counter()
            action()
        page.wait_for_selector(drawn)
        seconds = time.perf_counter() - started
    size = len(answer.value.body())
    return {"drawn": seconds, "bytes": size, **page.evaluate("window.tokenlensTimings")}


def graph_table(page, client: Client, base: str, model: str, make_exploration) -> list[str]:
    """The graph table's lines, one per GRAPH_CASES setting."""
    prompt = prompt_of(client, model, GRAPH_LENGTH)
    exploration_id = make_exploration(prompt)
    lines = [
        f"\n### attention graph, {model}: {GRAPH_LENGTH} tokens (Chromium headless)\n",
        "| setting | links that met the rule | links sent and drawn | bytes "
        "| request (model + transfer) | drawing | tab or setting → drawn |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for what, fields in GRAPH_CASES:
        time_graph(page, base, exploration_id, fields)  # warm: layer inputs kept
        measured = time_graph(page, base, exploration_id, fields)
        lines.append(
            f"| {what} | {measured['graphMatching']:,} | {measured['graphEdges']:,} "
            f"| {measured['bytes'] / 1e3:.0f} kB | {measured['graphFetchMs'] / 1000:.2f} s "
            f"| {measured['graphRenderMs'] / 1000:.2f} s | {measured['drawn']:.2f} s |"
        )
    return lines


def _median_seconds(call) -> float:
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def switch_row(loaded, length: int) -> str:
    """One row of the layer-switch table: `length` tokens of SENTENCE as the model reads them."""
    from engine.attention import LayerInputCache, attention_for, capture_attention
    from engine.tokenization import read_model_sequence

    long_text = SENTENCE * (length // 20 + 2)
    tokens = read_model_sequence(loaded, long_text).tokens
    text = long_text[: tokens[length - 1].end]
    ids = [token.id for token in read_model_sequence(loaded, text).tokens]
    last, cache = loaded.info.n_layers - 1, LayerInputCache()

    def first():
        cache.clear()
        capture_attention(loaded, ids, (0,), reuse=(cache, "bench"))

    first_s = _median_seconds(first)
    switch_s = _median_seconds(
        lambda: capture_attention(loaded, ids, (last,), reuse=(cache, "bench"))
    )
    packed_s = _median_seconds(
        lambda: attention_for(loaded, text, layers=[last], reuse=(cache, "bench"))
    )
    before_s = _median_seconds(lambda: capture_attention(loaded, ids, (last,)))
    one_layer = _median_seconds(lambda: bare_layer(loaded, cache, last))
    return (
        f"| {len(ids)} | {first_s:.3f} s | {switch_s:.4f} s | {packed_s:.3f} s | "
        f"{before_s:.3f} s | {one_layer:.4f} s | {switch_s / one_layer:.2f}× |"
    )


def bare_layer(loaded, cache, index: int) -> None:
    """One decoder layer's eager forward pass on its kept inputs, with no hook: the floor of a
    layer switch."""
    import torch

    from engine.attention import _eager_attention

    (kept,) = cache._entries.values()
    args, kwargs = kept.calls[index]
    with torch.inference_mode(), _eager_attention(loaded.model):
        loaded.model.get_decoder().layers[index](*args, **kwargs)


def layer_switch_table(model: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenlens_site.settings")
    import django

    django.setup()
    import torch
    from django.conf import settings

    from engine.loading import PACKAGED_MODELS, load, pick_device

    spec = next(spec for spec in PACKAGED_MODELS if spec.key == model)
    loaded = load(spec, settings.TOKENLENS_MODEL_CACHE, pick_device())
    print(f"\n### layer switches, {model}: the model's side ({torch.get_num_threads()} threads)\n")
    print(
        "| tokens | first request (whole pass, inputs kept) | switch to the last layer: model "
        "| switch: model + packing | before: a pass up to the last layer "
        "| that layer's bare forward | switch ÷ one layer (≤ 1) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for length in LENGTHS:
        print(switch_row(loaded, length), flush=True)


def main(model: str) -> None:
    # One visitor asks for 1024-token layers again and again: more than a minute's budget.
    budget = str(10**9)
    base, server = start_server(TOKENLENS_VISITOR_BUDGET=budget, TOKENLENS_COMPUTE_BUDGET=budget)
    try:
        client = Client(base)
        client.request("GET", "/explore/")  # session + CSRF cookies for its API posts
        rows = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS
            )
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            page.goto(base + "/explore/")
            cookies = {c["name"]: c["value"] for c in context.cookies()}

            def make_exploration(prompt: str) -> str:
                return json.loads(
                    page.evaluate(
                        """async ([model, prompt, token]) => {
                            const r = await fetch('/api/v1/explorations/', {method: 'POST',
                              headers: {'Content-Type': 'application/json', 'X-CSRFToken': token},
                              body: JSON.stringify({model: model, prompt: prompt})});
                            return await r.text(); }""",
                        [model, prompt, cookies.get("csrftoken", "")],
                    )
                )["id"]

            for length in () if GRAPH_ONLY else LENGTHS:
                prompt = prompt_of(client, model, length)
                exploration_id = make_exploration(prompt)
                payload = payload_bytes(client, model, prompt)
                time_panel(page, base, exploration_id)  # warm: model loaded, JIT settled
                measured = time_panel(page, base, exploration_id)
                rows.append((length, payload, measured))
            graph_lines = graph_table(page, client, base, model, make_exploration)
            browser.close()
    finally:
        if server:
            server.terminate()
    if GRAPH_ONLY:
        print("\n".join(graph_lines))
        return
    print(f"### attention panel, {model} (one layer, all heads; Chromium headless)\n")
    print(
        "| tokens | payload per layer | request, layer 0 (model + transfer + inflate) "
        "| tab pressed → layer 0 heatmap drawn | all heads drawn | last layer requested → drawn |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for length, payload, measured in rows:
        print(
            f"| {length} | {payload / 1e6:.2f} MB | {measured['attentionFetchMs'] / 1000:.2f} s "
            f"| {measured['to_heatmap']:.2f} s | {measured['small_multiples']:.2f} s "
            f"| {measured['last_layer']:.2f} s |"
        )
    print("\nTargets at 512 tokens: ≤ 1.5 s to a drawn heatmap, ≤ 1.5 MB per layer.")
    print("\n".join(graph_lines))
    layer_switch_table(model)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct")
