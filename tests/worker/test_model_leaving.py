"""A model that leaves the catalog (removed from the Models page) or comes back from another
folder under the same key: the worker's registry never serves the old weights, and the
heartbeat's drop_stale_models frees them with their stepper and scheduler thread."""

import shutil
from dataclasses import replace

import pytest

from engine.catalog import spec_for
from engine.loading import ModelRegistry
from engine.stepping import StepRequest
from engine.types import UnknownModelError
from worker import loaded
from worker.scheduler import TooBusy

KEY = "local-moving"


@pytest.fixture
def catalog_entry(tiny_gpt2_dir, tmp_path):
    """Where the worker's lookup finds KEY now (None: removed), and a second copy of it."""
    other = tmp_path / "elsewhere"
    shutil.copytree(tiny_gpt2_dir, other)
    now = {"spec": _spec_at(tiny_gpt2_dir)}
    return now, other


def _spec_at(folder):
    return replace(spec_for(str(folder)), key=KEY)


def test_the_registry_loads_a_moved_model_again_and_forgets_a_removed_one(catalog_entry, settings):
    now, other = catalog_entry
    registry = ModelRegistry(
        {}, settings.TOKENLENS_MODEL_CACHE, "cpu", lookup=lambda _: now["spec"]
    )
    first = registry.get(KEY)
    assert registry.get(KEY) is first and registry.stale_keys() == []
    now["spec"] = _spec_at(other)  # removed, then added again from another folder
    assert registry.stale_keys() == [KEY]
    moved = registry.get(KEY)
    assert moved is not first and moved.spec.location == str(other)
    now["spec"] = None  # removed
    assert registry.stale_keys() == [KEY]
    with pytest.raises(UnknownModelError):
        registry.get(KEY)
    assert registry.loaded_keys() == []


def test_drop_stale_models_frees_the_model_its_stepper_and_its_scheduler(
    catalog_entry, settings, monkeypatch
):
    now, other = catalog_entry
    registry = ModelRegistry(
        {}, settings.TOKENLENS_MODEL_CACHE, "cpu", lookup=lambda _: now["spec"]
    )
    monkeypatch.setattr(loaded, "_registry", registry)
    monkeypatch.setattr(loaded, "_steppers", {})
    monkeypatch.setattr(loaded, "_schedulers", {})
    first = loaded.scheduler(KEY)
    assert loaded.drop_stale_models() == []

    now["spec"] = _spec_at(other)  # added again from elsewhere: a request gets the new weights
    second = loaded.scheduler(KEY)
    assert second is not first and second.stepper.loaded.spec.location == str(other)
    first._loop_thread.join(timeout=5)
    assert not first._loop_thread.is_alive()  # the old scheduler's thread ended

    now["spec"] = None  # removed: the next heartbeat frees it
    assert loaded.drop_stale_models() == [KEY]
    assert registry.loaded_keys() == [] and KEY not in loaded._schedulers
    second._loop_thread.join(timeout=5)
    assert not second._loop_thread.is_alive()
    ids = tuple(second.stepper.loaded.tokenizer("Hi").input_ids)
    late = second.submit(StepRequest(branch="late", prompt_ids=ids))
    with pytest.raises(TooBusy, match="left this worker"):  # never left waiting forever
        late.result(timeout=5)
