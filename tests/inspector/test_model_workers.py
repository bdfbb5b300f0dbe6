"""How workers learn of models added from the page: served_models reads the ready entries,
the heartbeat tells the worker of each new one (its queue is taken then), the add job goes to
any live worker; and the Models page's own add flow (htmx and without JavaScript)."""

import time

import pytest

from inspector.compute import heartbeat, routing
from inspector.models import CatalogModel, Job
from tests.inspector.makers import browser

pytestmark = pytest.mark.django_db


def _entry(key: str, status=CatalogModel.Status.READY) -> CatalogModel:
    return CatalogModel.objects.create(
        key=key, reference=f"/srv/{key}", label=key, source="local", status=status
    )


def test_a_worker_serving_every_model_serves_ready_added_ones(settings):
    settings.TOKENLENS_WORKER_MODELS = []
    _entry("local-ready")
    _entry("local-adding", CatalogModel.Status.ADDING)
    served = routing.served_models()
    assert served[:2] == ["smollm2-135m-instruct", "gemma-3-270m"]
    assert "local-ready" in served and "local-adding" not in served
    settings.TOKENLENS_WORKER_MODELS = ["gemma-3-270m"]
    assert routing.served_models() == ["gemma-3-270m"]


def test_the_heartbeat_names_new_models_once_and_keeps_beating_without_the_database(
    monkeypatch,
):
    answers = iter([["a"], ["a", "b"], RuntimeError("database away"), ["a", "b", "c"]])
    beats, new = [], []

    def models():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(heartbeat, "beat", lambda name, served, **_: beats.append(list(served)))

    def sleep(_seconds):
        if len(beats) == 4:
            raise _Stop  # the thread's loop ends here

    monkeypatch.setattr(heartbeat, "wait_for_next_beat", sleep)
    monkeypatch.setattr(heartbeat.threading, "Thread", _Inline)
    with pytest.raises(_Stop):
        heartbeat.start_beating(models, on_new=new.append)
    assert beats == [["a"], ["a", "b"], ["a", "b"], ["a", "b", "c"]]
    assert new == [["b"], ["c"]]  # the first beat's models are consumed from the start


def test_a_queue_not_taken_is_left_out_of_the_beat_and_taken_at_the_next(monkeypatch):
    answers = iter([["a"], ["a", "b"], ["a", "b"], ["a", "b"]])
    beats, taken, tries = [], [], []

    def consume(keys):  # Redis away for a moment at the first try
        tries.append(list(keys))
        if len(tries) == 1:
            raise ConnectionError("Redis away")
        taken.append(list(keys))

    monkeypatch.setattr(heartbeat, "beat", lambda name, served, **_: beats.append(list(served)))

    def sleep(_seconds):
        if len(beats) == 4:
            raise _Stop

    monkeypatch.setattr(heartbeat, "wait_for_next_beat", sleep)
    monkeypatch.setattr(heartbeat.threading, "Thread", _Inline)
    monkeypatch.setattr(heartbeat, "_every_beat", [])
    with pytest.raises(_Stop):
        heartbeat.start_beating(lambda: next(answers), on_new=consume)
    # The thread beat on; "b" was not said to be served until its queue was taken.
    assert beats == [["a"], ["a"], ["a", "b"], ["a", "b"]]
    assert tries == [["b"], ["b"]] and taken == [["b"]]


def test_a_failing_hook_does_not_stop_the_beats(monkeypatch):
    beats, hooked = [], []

    def hook():
        hooked.append(1)
        raise RuntimeError("database away")

    monkeypatch.setattr(heartbeat, "beat", lambda name, served, **_: beats.append(list(served)))
    monkeypatch.setattr(heartbeat, "_every_beat", [])
    heartbeat.at_every_beat(hook)
    heartbeat.at_every_beat(hook)  # once only

    def sleep(_seconds):
        if len(beats) == 2:
            raise _Stop

    monkeypatch.setattr(heartbeat, "wait_for_next_beat", sleep)
    monkeypatch.setattr(heartbeat.threading, "Thread", _Inline)
    with pytest.raises(_Stop):
        heartbeat.start_beating(lambda: ["a"])
    assert beats == [["a"], ["a"]] and hooked == [1, 1]


class _Stop(Exception):
    pass


class _Inline:
    """threading.Thread that runs its target at start(), in this thread."""

    def __init__(self, target, **_):
        self.target = target

    def start(self):
        self.target()


def test_the_add_job_goes_to_a_worker_that_will_serve_the_model(monkeypatch):
    live = {"pinned:1": ["gemma-3-270m"], "open:2": ["gemma-3-270m", "smollm2-135m-instruct"]}
    monkeypatch.setattr(heartbeat, "live_workers", lambda: live)
    monkeypatch.setattr(heartbeat, "open_workers", lambda: ["open:2"])
    for index in range(20):  # whatever the reference, never the pinned worker
        route = routing.any_worker_route(f"/srv/tiny-{index}", adds=f"local-tiny-{index}")
        assert routing.route_task("t", [], {"route": route}, {}) == {
            "queue": "tokenlens.worker.open:2"
        }
    # A pinned worker whose MODELS= names the model is one that will serve it.
    live["named:3"] = ["local-tiny"]
    assert routing.workers_for_adding("local-tiny") == ["named:3", "open:2"]
    monkeypatch.setattr(heartbeat, "open_workers", list)
    assert routing.workers_for_adding("local-other") == []
    route = routing.any_worker_route("/srv/other", adds="local-other")
    assert routing.route_task("t", [], {"route": route}, {})["queue"].startswith(
        "tokenlens.worker."
    )
    monkeypatch.setattr(heartbeat, "live_workers", dict)
    assert routing.route_task("t", [], {"route": route}, {}) is None


def test_adding_is_refused_at_once_when_every_worker_is_pinned_to_other_models(
    admin_user, settings, monkeypatch, tiny_gpt2_dir
):
    from tests.conftest import client_for

    settings.TOKENLENS_TASKS_IN_PROCESS = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(heartbeat, "live_workers", lambda: {"w:1": ["gemma-3-270m"]})
    monkeypatch.setattr(heartbeat, "open_workers", list)
    refused = client_for(admin_user).post(
        "/api/v1/models/", {"reference": str(tiny_gpt2_dir)}, "json"
    )
    assert refused.status_code == 503, refused.content
    message = refused.json()["error"]["message"]
    assert "none would serve local-tiny-gpt2" in message
    assert "make worker MODELS=local-tiny-gpt2" in message
    assert not CatalogModel.objects.exists() and not Job.objects.exists()


def test_a_worker_pinned_to_other_models_does_not_keep_the_model_it_added(
    settings, monkeypatch, tiny_gpt2_dir
):
    from engine.catalog import spec_for
    from engine.loading import ModelRegistry
    from worker import catalog as adding
    from worker import loaded

    fresh = ModelRegistry({}, settings.TOKENLENS_MODEL_CACHE, "cpu", lookup=lambda _key: None)
    monkeypatch.setattr(loaded, "_registry", fresh)
    spec = spec_for(str(tiny_gpt2_dir))
    entry = CatalogModel.objects.create(
        key=spec.key, reference=spec.location, label=spec.label, source="local"
    )
    settings.TOKENLENS_WORKER_MODELS = ["gemma-3-270m"]
    outcome = adding.add_model({"entry": entry.pk}, lambda _stage: None)
    assert outcome["result"]["key"] == spec.key  # added for the workers that serve it
    assert fresh.loaded_keys() == []  # but not kept where it is never used
    CatalogModel.objects.all().delete()
    settings.TOKENLENS_WORKER_MODELS = []
    entry = CatalogModel.objects.create(
        key=spec.key, reference=spec.location, label=spec.label, source="local"
    )
    adding.add_model({"entry": entry.pk}, lambda _stage: None)
    assert fresh.loaded_keys() == [spec.key]


def test_the_page_adds_a_folder_and_shows_its_card(
    admin_user, tiny_gpt2_dir, django_capture_on_commit_callbacks
):
    client = browser(admin_user)
    html = client.get("/models/").content.decode()
    page_id = html.split('name="page_id" value="')[1].split('"')[0]
    with django_capture_on_commit_callbacks(execute=True):
        added = client.post(
            "/models/add/",
            {"reference": str(tiny_gpt2_dir), "page_id": page_id},
            HTTP_HX_REQUEST="true",
        )
    assert added.status_code == 200 and 'data-testid="add-status"' in added.content.decode()
    job = Job.objects.get(kind=Job.Kind.ADD_MODEL)
    assert str(job.page_id) == page_id  # its progress goes to this page
    status = client.get(f"/models/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "is in the catalog as <code>local-tiny-gpt2</code>" in status
    assert "GPT2LMHeadModel: 2 layers" in status


def test_the_page_says_why_a_folder_cannot_be_added(admin_user, tmp_path):
    client = browser(admin_user)
    refused = client.post("/models/add/", {"reference": "not a reference"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422
    assert "Give a Hugging Face id" in refused.content.decode()
    without_js = client.post("/models/add/", {"reference": "../relative"})
    assert without_js.status_code == 400 and "absolute path" in without_js.content.decode()
    assert not CatalogModel.objects.exists() and not Job.objects.exists()


def test_the_page_removes_an_added_model_or_says_why_not(admin_user):
    from inspector.models import Exploration

    client = browser(admin_user)
    _entry("local-used")
    Exploration.objects.create(model_key="local-used", prompt="Hi")
    kept = client.post("/models/local-used/remove/", follow=True).content.decode()
    assert "1 exploration uses local-used" in kept
    Exploration.objects.all().delete()
    removed = client.post("/models/local-used/remove/", follow=True).content.decode()
    assert "Removed local-used from the catalog" in removed
    assert not CatalogModel.objects.exists()


def test_a_model_just_added_cuts_the_pause_before_the_next_beat():
    started = time.monotonic()
    heartbeat.beat_soon()  # the add job, once the model is ready on this worker
    heartbeat.wait_for_next_beat(10)
    assert time.monotonic() - started < 1
    started = time.monotonic()
    heartbeat.wait_for_next_beat(0.2)  # and only once
    assert time.monotonic() - started >= 0.2
