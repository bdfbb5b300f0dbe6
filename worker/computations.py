"""What a worker process computes: one function per kind of work (COMPUTATIONS), over the
models the process holds (worker.loaded: one ModelRegistry, one Stepper and ModelScheduler per
model, made on first use). The Celery tasks (worker.tasks) and the job runner (worker.jobs) call
compute() from many threads at once: every step and preview joins the model's next batched
pass, and every analysis takes its turn between passes (worker.scheduler)."""

from __future__ import annotations

import hashlib
import math
import time

import torch
from django.db import close_old_connections

from engine.anatomy import sampling_anatomy
from engine.attention import LayerInputCache, attention_for
from engine.attention_graph import LinkRule, attention_graph
from engine.attribution import DEFAULT_STEPS, attribute
from engine.constraints import Constraint
from engine.distribution import next_token_inputs, next_token_logits, prompt_ids
from engine.embeddings import embeddings_overview
from engine.heads import cluster_heads, head_features
from engine.lens import logit_lens
from engine.limits import DEFAULT_GRAPH_K, DEFAULT_GRAPH_MAX_EDGES, DEFAULT_GRAPH_THRESHOLD
from engine.loading import LoadedModel, Progress
from engine.params import SamplingParams
from engine.stepping import StepRequest
from engine.tokenization import read_model_sequence
from engine.types import EngineError
from engine.vocabulary import lookup_word
from inspector.protocol import (
    COST_KEY,
    EXPIRED,
)
from worker.loaded import loaded_model, on_the_model, scheduler
from worker.scheduler import seconds_until

_layer_inputs = LayerInputCache()  # the attention panel's layer switches (engine.attention)


def compute_tokenization(params: dict, progress: Progress | None = None) -> dict:
    """Tokenize params["text"] (then any completion_ids) with params["model"]."""
    loaded = loaded_model(params["model"], progress)
    result = read_model_sequence(loaded, params["text"], **sequence_options(params))
    return result.to_dict()


def compute_distribution(params: dict, progress: Progress | None = None) -> dict:
    """The next-token distribution (Distribution.to_dict()) for a prompt + completion so far.

    Runs as a step of a branch named after the prompt (or params["cache_branch"], a saved
    branch previewing its next token), so a client that calls again with a longer completion
    reuses the cached prefix instead of reading the whole text again."""
    model_scheduler = scheduler(params["model"], progress)
    ids = prompt_ids(
        model_scheduler.stepper.loaded,
        params["prompt"],
        params.get("system_prompt") or None,
        bool(params.get("use_chat_template")),
    )
    request = StepRequest(
        branch=params.get("cache_branch")
        or "api:" + hashlib.sha256(repr(ids).encode()).hexdigest()[:16],
        prompt_ids=tuple(ids),
        completion_ids=tuple(params.get("completion_ids") or ()),
        params=SamplingParams.from_dict(params.get("params")),
        constraint=Constraint.from_dict(params.get("constraint")),
        top_n=int(params.get("top_n") or 20),
        cache_scope=params.get("cache_scope") or "",
    )
    result = model_scheduler.step(request, seconds_until(params.get("expires_at")))
    return {**result.tokens[0].distribution.to_dict(), COST_KEY: result.computed_tokens}


def compute_sampling(params: dict, progress: Progress | None = None) -> dict:
    """The next token's sampling pipeline taken apart (SamplingAnatomy.to_dict()): the logits
    come from one pass on the model's thread, the pipelines under every setting run here."""
    completion_ids = list(params.get("completion_ids") or ())
    constraint = Constraint.from_dict(params.get("constraint"))

    def run(loaded: LoadedModel):
        context, valid_mask = next_token_inputs(
            loaded,
            params["prompt"],
            params.get("system_prompt") or None,
            bool(params.get("use_chat_template")),
            completion_ids,
            constraint,
        )
        return next_token_logits(loaded, context), context, valid_mask, loaded.tokenizer

    logits, context, valid_mask, tokenizer = on_the_model(params["model"], run, progress)
    return sampling_anatomy(
        logits,
        SamplingParams.from_dict(params.get("params")),
        tokenizer,
        context_ids=torch.tensor(context),
        completion_ids=torch.tensor(completion_ids, dtype=torch.long),
        valid_mask=valid_mask,
        n_draws=int(params.get("draws") or 30),
    ).to_dict()


def compute_attention(params: dict, progress: Progress | None = None) -> dict:
    """Attention maps of the requested layers and heads (AttentionResult.to_dict()). The
    sequence's layer inputs are kept per person, so switching layers costs one layer."""
    from django.conf import settings

    def run(loaded: LoadedModel) -> dict:
        return attention_for(
            loaded,
            params["text"],
            layers=params.get("layers") or [],
            heads=params.get("heads") or None,
            encoding=params.get("encoding") or "uint8",
            max_cells=settings.TOKENLENS_MAX_ATTENTION_CELLS,
            reuse=(_layer_inputs, params.get("cache_scope") or ""),
            **sequence_options(params),
        ).to_dict()

    return on_the_model(params["model"], run, progress)


def compute_attention_graph(params: dict, progress: Progress | None = None) -> dict:
    """The strongest attention links of a layer range (AttentionGraph.to_dict()). It keeps
    and reuses the same layer inputs as compute_attention, so opening a heatmap of one of its
    layers afterwards costs one layer."""
    from django.conf import settings

    links = LinkRule(
        rule=params.get("rule") or "top_k",
        k=params.get("k", DEFAULT_GRAPH_K),
        threshold=params.get("threshold", DEFAULT_GRAPH_THRESHOLD),
        skip_first=bool(params.get("skip_first")),
    )

    def run(loaded: LoadedModel) -> dict:
        return attention_graph(
            loaded,
            params["text"],
            first_layer=params.get("first_layer") or 0,
            last_layer=params.get("last_layer"),
            heads=params.get("heads") or None,
            links=links,
            max_edges=params.get("max_edges") or DEFAULT_GRAPH_MAX_EDGES,
            max_cells=settings.TOKENLENS_MAX_ATTENTION_CELLS,
            reuse=(_layer_inputs, params.get("cache_scope") or ""),
            **sequence_options(params),
        ).to_dict()

    return on_the_model(params["model"], run, progress)


def compute_heads(params: dict, progress: Progress | None = None) -> dict:
    """Every head's attention features over the sequence, mapped to 2-D and grouped into
    params["k"] labelled clusters (HeadClusters.to_dict())."""

    def run(loaded: LoadedModel):
        return head_features(loaded, params["text"], **sequence_options(params))

    features = on_the_model(params["model"], run, progress)
    clusters = cluster_heads(features, k=params.get("k", 4), seed=params.get("seed", 0))
    return clusters.to_dict()


def sequence_options(params: dict) -> dict:
    """The keyword arguments that say what sequence an analysis reads besides its text."""
    return {
        "system_prompt": params.get("system_prompt") or None,
        "use_chat_template": bool(params.get("use_chat_template")),
        "completion_ids": tuple(params.get("completion_ids") or ()),
    }


def compute_branch_step(params: dict, progress: Progress | None = None) -> dict:
    """Step a saved branch (read from and written to the database by worker.generation)."""
    from worker.generation import step_branch

    return step_branch(params, lambda key: scheduler(key, progress))


def compute_embeddings(params: dict, progress: Progress | None = None) -> dict:
    """A token's embedding (params["token_id"], default: the last token of the sequence), the
    model's position encoding and a map of the sequence (EmbeddingsOverview.to_dict())."""

    def run(loaded: LoadedModel) -> dict:
        tokenization = read_model_sequence(loaded, params["text"], **sequence_options(params))
        return embeddings_overview(
            loaded,
            tokenization,
            token_id=params.get("token_id"),
            n_positions=params.get("n_positions", 64),
        ).to_dict()

    return on_the_model(params["model"], run, progress)


def compute_vocabulary(params: dict, progress: Progress | None = None) -> dict:
    """How params["word"] is tokenized, and the entry whose id it spells (WordLookup)."""
    loaded = loaded_model(params["model"], progress)
    return lookup_word(loaded.tokenizer, params.get("word") or "").to_dict()


def compute_lens(params: dict, progress: Progress | None = None) -> dict:
    """The logit lens at params["position"] (LogitLens.to_dict()), with an optional contrast.

    Reads the prefix's key/value states from this worker's stepping cache (params
    ["cache_branch"]: a saved branch whose states to look at first) and leaves the sequence's
    own there, so the lens at another position of the same text runs one token."""
    model_scheduler = scheduler(params["model"], progress)
    model_stepper = model_scheduler.stepper
    return model_scheduler.analysis(
        lambda _yield: logit_lens(
            model_stepper.loaded,
            params["text"],
            position=params.get("position"),
            top_k=params.get("top_k", 10),
            chosen_ids=tuple(params.get("chosen_ids") or ()),
            contrast_tokens=params.get("contrast") or None,
            kv_cache=model_stepper.cache,
            cache_branch=params.get("cache_branch") or None,
            cache_scope=params.get("cache_scope") or "",
            **sequence_options(params),
        ).to_dict()
    ).result()


def compute_attribution(params: dict, progress: Progress | None = None) -> dict:
    """Which tokens up to params["position"] (default: the last) drove params["target_id"]
    as the next token, by params["method"] (Attribution.to_dict())."""
    report = progress or (lambda _stage: None)

    def run(yield_point) -> dict:
        def progress_then_yield(stage: str) -> None:
            report(stage)  # a job writes its stage: on the model's thread, so hand the
            close_old_connections()  # connection back before the pass
            yield_point()  # waiting steps take one pass between the method's chunks

        return attribute(
            model_scheduler.stepper.loaded,
            params["text"],
            target_id=params["target_id"],
            method=params["method"],
            position=params.get("position"),
            n_steps=params.get("n_steps", DEFAULT_STEPS),
            progress=progress_then_yield,
            cache_scope=params.get("cache_scope") or "",
            precision=params.get("precision") or "float32",
            **sequence_options(params),
        ).to_dict()

    model_scheduler = scheduler(params["model"], progress)
    return model_scheduler.analysis(run).result()


COMPUTATIONS = {
    "tokenize": compute_tokenization,
    "distribution": compute_distribution,
    "sampling": compute_sampling,
    "branch_step": compute_branch_step,
    "attention": compute_attention,
    "attention_graph": compute_attention_graph,
    "heads": compute_heads,
    "embeddings": compute_embeddings,
    "vocabulary": compute_vocabulary,
    "attribution": compute_attribution,
    "logit_lens": compute_lens,
}


def compute(kind: str, params: dict, progress: Progress | None = None) -> dict:
    """Run one computation; returns {"result": ...} or {"error": {"field", "message"}}.
    Work that starts after params["expires_at"] (whoever asked has been told it failed) is
    not done."""
    if time.time() > params.get("expires_at", math.inf):
        return {"error": {"field": "non_field_errors", "message": EXPIRED, "status": 503}}
    try:
        return {"result": COMPUTATIONS[kind](params, progress)}
    except EngineError as exc:
        return {"error": exc.to_dict()}
