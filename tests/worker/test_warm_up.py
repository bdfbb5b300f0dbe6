"""A worker's start: the default model and UMAP's code are loaded before anyone asks (in a
Celery worker on worker_ready, in the embedded default as daphne imports the ASGI app)."""

import sys
import time

import pytest

from inspector.compute import dispatch
from worker import loaded, tasks

pytestmark = [pytest.mark.model, pytest.mark.django_db(transaction=True)]
SMOL = "smollm2-135m-instruct"


def test_warming_up_loads_the_models_and_umap_and_only_logs_what_fails(caplog):
    loaded.warm_up([SMOL, "no-such-model"])
    assert SMOL in loaded.registry().loaded_keys()
    assert "umap" in sys.modules
    assert "could not load no-such-model" in caplog.text


def test_the_embedded_worker_warms_up_as_the_server_starts(settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.TOKENLENS_TASKS_IN_PROCESS = True
    settings.TOKENLENS_WARM_UP = True
    asked = []
    monkeypatch.setattr(tasks, "warm_up", asked.append)  # what the task calls
    dispatch.warm_up_here()
    deadline = time.monotonic() + 60
    while not asked and time.monotonic() < deadline:
        time.sleep(0.05)
    assert asked == [[settings.TOKENLENS_DEFAULT_MODEL]]


def test_no_warm_up_when_it_is_turned_off_or_the_work_runs_elsewhere(settings, monkeypatch):
    asked = []
    monkeypatch.setattr(tasks, "warm_up", asked.append)  # what the task calls
    settings.CELERY_TASK_ALWAYS_EAGER, settings.TOKENLENS_TASKS_IN_PROCESS = False, True
    settings.TOKENLENS_WARM_UP = False
    dispatch.warm_up_here()
    settings.TOKENLENS_WARM_UP, settings.TOKENLENS_TASKS_IN_PROCESS = True, False
    dispatch.warm_up_here()  # Celery workers warm up themselves (worker.tasks)
    time.sleep(0.5)
    assert asked == []
