"""Admitting a model to the catalog at run time: find it, read its configuration, load its
tokenizer and weights, and check that every analysis can read it, each stage reported, each
failure a ModelLoadError whose message names the cause (a missing folder, a folder without a
config, an encoder instead of a causal LM, a hub that cannot be reached…).

A hub id is read from this machine's Hugging Face cache when it is there; otherwise the hub
must be reachable (probed first: transformers itself retries for half a minute before saying
it is offline).
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import torch

from engine.architecture import check_supported, is_causal_architecture
from engine.distribution import next_token_logits
from engine.loading import LoadedModel, Progress, load_from
from engine.types import EngineError, ModelLoadError, ModelSpec

HUB_PROBE_SECONDS = 3
CHECK_TEXT = "The capital of France is"


def _local_source(spec: ModelSpec) -> tuple[str, bool]:
    folder = Path(spec.location)
    if not folder.exists():
        raise ModelLoadError(f"The folder {folder} does not exist (on the worker's machine)")
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is a file, not a model folder")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"The folder {folder} holds no config.json: it is not a model folder as "
            "transformers' save_pretrained writes one"
        )
    return str(folder), True


def _hub_unreachable(endpoint: str) -> str | None:
    """Why the hub's endpoint cannot be reached (None: a connection opened)."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=HUB_PROBE_SECONDS).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


def _hub_source(spec: ModelSpec) -> tuple[str, bool]:
    """(the id, whether to read it from the local cache only)."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(spec.location, "config.json"), str):
        return spec.location, True
    if constants.is_offline_mode():
        raise ModelLoadError(
            f"The Hugging Face hub is switched off here (HF_HUB_OFFLINE) and {spec.location} "
            "is not in this machine's Hugging Face cache; add a local folder instead"
        )
    reason = _hub_unreachable(constants.ENDPOINT)
    if reason is not None:
        raise ModelLoadError(
            f"The Hugging Face hub ({constants.ENDPOINT}) cannot be reached from the worker "
            f"({reason}), and {spec.location} is not in its Hugging Face cache; add a local "
            "folder instead"
        )
    return spec.location, False


def _read_config(source: str, local_only: bool, spec: ModelSpec):
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"Could not read the configuration of {spec.label}: {_first_sentence(exc)}"
        ) from exc
    architectures = getattr(config, "architectures", None)
    if not is_causal_architecture(architectures):
        raise ModelLoadError(
            f"{spec.label} is a {architectures[0]}, not a causal language model: TokenLens "
            "reads models that predict the next token (…ForCausalLM, …LMHeadModel)"
        )
    return config


def _first_sentence(exc: Exception) -> str:
    """transformers' messages go on with advice about upgrading it: the cause comes first."""
    line = str(exc).strip().split("\n")[0]
    return line.split(". ")[0].rstrip(".") + "."


def admit(spec: ModelSpec, device: torch.device, progress: Progress | None = None) -> LoadedModel:
    """Load a hub id or a local folder (spec.source "hub" or "local") onto `device` and check
    that TokenLens can read it: ModelLoadError naming the cause otherwise."""
    progress = progress or (lambda _stage: None)
    progress(f"Looking for {spec.location}")
    source, local_only = _local_source(spec) if spec.source == "local" else _hub_source(spec)
    progress(f"Reading the configuration of {spec.label}")
    _read_config(source, local_only, spec)
    loaded = load_from(spec, source, device, progress, local_files_only=local_only)
    progress(f"Checking that every analysis can read {spec.label}")
    check_supported(loaded.model)
    _check_one_pass(loaded)
    return loaded


def _check_one_pass(loaded: LoadedModel) -> None:
    """One forward pass over a short text: logits for every id the tokenizer can give."""
    ids = loaded.tokenizer(CHECK_TEXT).input_ids
    try:
        logits = next_token_logits(loaded, ids)  # (vocab,)
    except (EngineError, RuntimeError, IndexError, ValueError) as exc:
        raise ModelLoadError(f"{loaded.spec.label} failed a forward pass: {exc}") from exc
    if logits.shape[-1] < max(ids) + 1 or not torch.isfinite(logits).all():
        raise ModelLoadError(
            f"{loaded.spec.label} gave unusable logits (its tokenizer and its weights do not "
            "match: more token ids than output rows, or non-finite values)"
        )
