"""Loading models: the packaged GGUF files, local folders, the catalog and devices."""

import threading
from pathlib import Path

import pytest
import torch
from django.conf import settings

from engine.loading import (
    PACKAGED_MODELS,
    ModelRegistry,
    build_catalog,
    inspect_prepared,
    is_prepared,
    load,
    pick_device,
    spec_for,
)
from engine.types import ModelLoadError, UnknownModelError

CACHE = Path(settings.TOKENLENS_MODEL_CACHE)


def test_catalog_lists_the_packaged_models_first_then_extras(tmp_path):
    catalog = build_catalog(["HuggingFaceTB/SmolLM2-360M", str(tmp_path)])
    keys = list(catalog)
    assert keys[:2] == ["smollm2-135m-instruct", "gemma-3-270m"]
    assert catalog["huggingfacetb-smollm2-360m"].source == "hub"
    local = catalog[f"local-{tmp_path.name.lower().replace('_', '-')}"]
    assert local.source == "local" and local.location == str(tmp_path)


def test_a_path_that_does_not_exist_yet_is_still_a_local_folder():
    assert spec_for("/models/missing").source == "local"
    assert spec_for("gpt2").source == "hub"


@pytest.mark.parametrize(
    ("key", "layers", "heads", "kv_heads", "hidden", "vocab", "chat"),
    [
        ("smollm2-135m-instruct", 30, 9, 3, 576, 49152, True),
        ("gemma-3-270m", 18, 4, 1, 640, 262144, False),
    ],
)
def test_packaged_models_are_converted_once_and_described_without_loading(
    key, layers, heads, kv_heads, hidden, vocab, chat
):
    spec = build_catalog()[key]
    assert is_prepared(spec, CACHE), "run `make models` first"
    assert (CACHE / key / "model.safetensors").exists()
    assert not list((CACHE / key).glob("*.gguf")), "the GGUF copy is not kept in the cache"
    info = inspect_prepared(spec, CACHE)
    assert (info.n_layers, info.n_heads, info.n_kv_heads) == (layers, heads, kv_heads)
    assert (info.hidden_size, info.vocab_size, info.has_chat_template) == (hidden, vocab, chat)
    assert info.n_params > 100_000_000


def test_loaded_model_reports_the_same_facts_as_its_files(any_packaged_model):
    loaded = any_packaged_model
    from_files = inspect_prepared(loaded.spec, CACHE)
    assert loaded.info.n_params == from_files.n_params
    assert loaded.info.context_length == from_files.context_length > 1024
    assert loaded.info.device == str(pick_device())
    assert not loaded.model.training


def test_a_local_folder_loads_like_the_packaged_copy(smollm2):
    spec = spec_for(str(CACHE / "smollm2-135m-instruct"))
    as_folder = load(spec, CACHE, torch.device("cpu"))
    ids = smollm2.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        expected = smollm2.model(ids).logits
        actual = as_folder.model(ids).logits
    assert torch.allclose(expected, actual)
    assert smollm2.tokenizer.decode(int(actual[0, -1].argmax())).strip() == "Paris"


def test_a_broken_folder_fails_with_a_clear_message(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="Could not load"):
        load(spec_for(str(tmp_path)), CACHE, torch.device("cpu"))


def test_the_registry_loads_each_model_once(tiny_model_dir):
    seen = []
    spec = spec_for(str(tiny_model_dir))
    registry = ModelRegistry({spec.key: spec}, CACHE, "cpu", on_loaded=seen.append)
    stages = []
    first = registry.get(spec.key, stages.append)
    assert registry.get(spec.key) is first
    assert len(seen) == 1 and registry.loaded_keys() == [spec.key]
    assert any("Loading" in stage for stage in stages)
    assert first.info.n_layers == 2 and first.info.n_kv_heads == 2


def test_a_request_waiting_for_a_load_under_way_is_told_so(tiny_model_dir, monkeypatch):
    """The worker's warm-up loads the default model; a request arriving meanwhile waits for
    that load (no second copy) and its page says what it waits for."""
    import engine.loading

    spec = spec_for(str(tiny_model_dir))
    registry = ModelRegistry({spec.key: spec}, CACHE, "cpu")
    loading, release = threading.Event(), threading.Event()

    def slow_load(*args, **kwargs):
        loading.set()
        release.wait(30)
        return load(*args, **kwargs)

    monkeypatch.setattr(engine.loading, "load", slow_load)
    warm_up = threading.Thread(target=registry.get, args=(spec.key,))
    warm_up.start()
    assert loading.wait(30)
    stages, answers = [], []
    waiter = threading.Thread(target=lambda: answers.append(registry.get(spec.key, stages.append)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and stages == [
        f"Waiting for the worker to finish loading {spec.label}"
    ]
    release.set()
    warm_up.join(30)
    waiter.join(30)
    assert answers == [registry.get(spec.key)] and registry.loaded_keys() == [spec.key]


def test_the_registry_names_the_models_it_knows():
    registry = ModelRegistry({s.key: s for s in PACKAGED_MODELS}, CACHE)
    with pytest.raises(UnknownModelError, match="smollm2-135m-instruct"):
        registry.get("no-such-model")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="no CUDA device"):
        pick_device("cuda")
