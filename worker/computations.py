"""What a worker process computes: one function per kind of work (COMPUTATIONS), over the
process's one ModelRegistry and one Stepper and ModelScheduler per model, created on first use
(never at import time). The Celery tasks (worker.tasks) and the job runner (worker.jobs) call
compute() from many threads at once: every step and preview joins the model's next batched
pass, and every analysis takes its turn between passes (worker.scheduler)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import socket
import threading
import time

import torch
from django.db import close_old_connections

from engine import jit_cache
from engine.anatomy import sampling_anatomy
from engine.attention import LayerInputCache, attention_for
from engine.attention_graph import LinkRule, attention_graph
from engine.attribution import DEFAULT_STEPS, attribute
from engine.constraints import Constraint
from engine.distribution import next_token_inputs, next_token_logits, prompt_ids
from engine.embeddings import embeddings_overview
from engine.heads import cluster_heads, head_features, prepare_head_maps
from engine.lens import logit_lens
from engine.limits import DEFAULT_GRAPH_K, DEFAULT_GRAPH_MAX_EDGES, DEFAULT_GRAPH_THRESHOLD
from engine.loading import LoadedModel, ModelRegistry, Progress, build_catalog
from engine.params import SamplingParams
from engine.stepping import Stepper, StepRequest
from engine.tokenization import read_model_sequence
from engine.types import EngineError
from engine.vocabulary import lookup_word
from inspector.protocol import (
    COST_KEY,
    EXPIRED,
    LOADED_KEY,
)
from worker.scheduler import ModelScheduler, seconds_until

_registry: ModelRegistry | None = None
_registry_lock = threading.Lock()
_steppers: dict[str, Stepper] = {}
_schedulers: dict[str, ModelScheduler] = {}
_layer_inputs = LayerInputCache()  # the attention panel's layer switches (engine.attention)
logger = logging.getLogger(__name__)
LOADED_TTL_SECONDS = 600


_published_at: dict[str, float] = {}
PUBLISH_EVERY_SECONDS = 60


def _publish_loaded(loaded: LoadedModel) -> None:
    """Tell the web processes (through the shared cache) that a worker holds this model: when
    it loads, then at most once a minute while it is used (the entry lives 10 minutes)."""
    from django.core.cache import cache

    now = time.monotonic()
    if now - _published_at.get(loaded.spec.key, -math.inf) < PUBLISH_EVERY_SECONDS:
        return
    _published_at[loaded.spec.key] = now
    # The cache is advisory: never fail a task because it is unreachable.
    with contextlib.suppress(Exception):
        cache.set(
            LOADED_KEY.format(key=loaded.spec.key),
            {"info": loaded.info.to_dict(), "worker": f"{socket.gethostname()}:{os.getpid()}"},
            timeout=LOADED_TTL_SECONDS,
        )


def _added_spec(key: str):
    """A model added from the Models page (inspector.catalog), once it is ready: what a worker
    started before it was added learns of it by."""
    from inspector.models import CatalogModel

    entry = CatalogModel.objects.ready().filter(key=key).first()
    return entry.spec if entry is not None else None


def registry() -> ModelRegistry:
    """This process's models, created on first use from the Django settings."""
    global _registry
    from django.conf import settings

    catalog = build_catalog(settings.TOKENLENS_EXTRA_MODELS)
    with _registry_lock:
        if _registry is None:
            torch.set_num_threads(settings.TOKENLENS_TORCH_THREADS)
            jit_cache.keep_compiled_code(settings.TOKENLENS_NUMBA_CACHE)
            _registry = ModelRegistry(
                catalog,
                settings.TOKENLENS_MODEL_CACHE,
                settings.TOKENLENS_DEVICE,
                on_loaded=_publish_loaded,
                lookup=_added_spec,
            )
        _registry.catalog = catalog  # models added to the catalog since start-up
    return _registry


def loaded_model(key: str, progress: Progress | None = None) -> LoadedModel:
    loaded = registry().get(key, progress)
    _publish_loaded(loaded)
    return loaded


def warm_up(models: list[str]) -> None:
    """Load `models` and UMAP's code (head maps) before anyone asks: the first request after a
    start then costs what any other does. A failure is only logged: the request that needs
    the model will say what is wrong."""
    for key in models:
        started = time.monotonic()
        try:
            loaded_model(key)
        except EngineError as error:
            logger.warning("Warm-up: could not load %s: %s", key, error)
            continue
        logger.info("Warm-up: %s loaded in %.1f s", key, time.monotonic() - started)
    started = time.monotonic()
    prepare_head_maps()
    logger.info("Warm-up: head maps ready in %.1f s", time.monotonic() - started)


def compute_tokenization(params: dict, progress: Progress | None = None) -> dict:
    """Tokenize params["text"] (then any completion_ids) with params["model"]."""
    loaded = loaded_model(params["model"], progress)
    result = read_model_sequence(loaded, params["text"], **sequence_options(params))
    return result.to_dict()


def stepper(key: str, progress: Progress | None = None) -> Stepper:
    """This process's Stepper for a model (its key/value caches live as long as the worker)."""
    from django.conf import settings

    loaded = loaded_model(key, progress)
    with _registry_lock:
        if key not in _steppers or _steppers[key].loaded is not loaded:  # new, or reloaded
            _steppers[key] = Stepper(loaded, settings.TOKENLENS_KV_CACHE_MB * 2**20)
        return _steppers[key]


def scheduler(key: str, progress: Progress | None = None) -> ModelScheduler:
    """This process's scheduler for a model: the one thread that runs its forward passes."""
    model_stepper = stepper(key, progress)
    with _registry_lock:
        previous = _schedulers.get(key)
        if previous is None or previous.stepper is not model_stepper:
            if previous is not None:
                previous.close()  # its model was loaded again from elsewhere
            _schedulers[key] = ModelScheduler(model_stepper)
        return _schedulers[key]


def drop_stale_models() -> list[str]:
    """Free the models this process holds that the catalog no longer names as they were
    loaded (removed from the Models page, or added again from another folder): their
    weights, key/value caches and scheduler thread. Asked at every heartbeat."""
    if _registry is None:
        return []
    stale = registry().stale_keys()
    for key in stale:
        registry().drop(key)
        with _registry_lock:
            _steppers.pop(key, None)
            previous = _schedulers.pop(key, None)
        if previous is not None:
            previous.close()
        logger.info("Dropped %s: it left the catalog or moved", key)
    return stale


def on_the_model(key: str, run, progress: Progress | None = None):
    """run(loaded) on the model's own thread, between two passes (an analysis's turn)."""
    model_scheduler = scheduler(key, progress)
    return model_scheduler.analysis(lambda _yield: run(model_scheduler.stepper.loaded)).result()


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
        return {"error": {"field": "non_field_errors", "message": EXPIRED}}
    try:
        return {"result": COMPUTATIONS[kind](params, progress)}
    except EngineError as exc:
        return {"error": exc.to_dict()}
