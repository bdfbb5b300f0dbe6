"""How workers learn of models added from the page: served_models reads the ready entries,
the heartbeat tells the worker of each new one (its queue is taken then), the add job goes to
any live worker; and the Models page's own add flow (htmx and without JavaScript)."""

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

    monkeypatch.setattr(heartbeat, "beat", lambda name, served: beats.append(list(served)))

    def sleep(_seconds):
        if len(beats) == 4:
            raise _Stop  # the thread's loop ends here

    monkeypatch.setattr(heartbeat.time, "sleep", sleep)
    monkeypatch.setattr(heartbeat.threading, "Thread", _Inline)
    with pytest.raises(_Stop):
        heartbeat.start_beating(models, on_new=new.append)
    assert beats == [["a"], ["a", "b"], ["a", "b"], ["a", "b", "c"]]
    assert new == [["b"], ["c"]]  # the first beat's models are consumed from the start


class _Stop(Exception):
    pass


class _Inline:
    """threading.Thread that runs its target at start(), in this thread."""

    def __init__(self, target, **_):
        self.target = target

    def start(self):
        self.target()


def test_the_add_job_goes_to_a_live_worker_whatever_it_serves(monkeypatch):
    monkeypatch.setattr(heartbeat, "live_workers", lambda: {"w:1": ["gemma-3-270m"]})
    route = routing.any_worker_route("/srv/tiny")
    assert routing.route_task("t", [], {"route": route}, {}) == {"queue": "tokenlens.worker.w:1"}
    monkeypatch.setattr(heartbeat, "live_workers", dict)
    assert routing.route_task("t", [], {"route": route}, {}) is None


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
