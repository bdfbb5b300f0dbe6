"""Adding models to the catalog through the API (admins): a tiny random GPT-2 folder made by
the tests goes from "adding" to "ready" with its card, reaches every person's catalog and
steps in an exploration; every bad reference is a message naming its cause with nothing
left behind; two admins adding one folder at once make one entry."""

import threading

import pytest
from django.db import connections

from inspector.models import AuditEvent, CatalogModel, Exploration, Job
from tests.conftest import client_for, make_person, require_env
from tests.inspector.makers import step

pytestmark = pytest.mark.django_db
KEY = "local-tiny-gpt2"


def _add(api, reference, capture):
    with capture(execute=True):
        return api.post("/api/v1/models/", {"reference": str(reference)}, "json")


def _catalog_keys(api) -> list[str]:
    return [entry["key"] for entry in api.get("/api/v1/models/").json()["models"]]


@pytest.fixture
def admin_api(admin_user):
    return client_for(admin_user)


def test_an_added_folder_becomes_ready_with_its_card_for_everyone(
    admin_api, student, tiny_gpt2_dir, django_capture_on_commit_callbacks, monkeypatch
):
    response = _add(admin_api, tiny_gpt2_dir, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    added = response.json()
    assert (added["key"], added["status"], added["added_by"]) == (KEY, "adding", "ada")
    assert added["n_layers"] is None  # the card comes from the loaded model
    job = admin_api.get(f"/api/v1/jobs/{added['job']['id']}/").json()
    assert job["status"] == "done", job
    assert job["result"]["card"]["architecture"] == "GPT2LMHeadModel"
    entry = CatalogModel.objects.get(key=KEY)
    assert entry.status == "ready" and entry.ready_at is not None
    assert AuditEvent.objects.filter(action="model.add", target_id=str(entry.pk)).exists()

    reader = client_for(student)
    card = next(m for m in reader.get("/api/v1/models/").json()["models"] if m["key"] == KEY)
    assert card["source"] == "local" and card["added_at"] is not None
    assert card["added_by"] is None  # which admin added it: for admins only
    mine = next(m for m in admin_api.get("/api/v1/models/").json()["models"] if m["key"] == KEY)
    assert mine["added_by"] == "ada"
    assert (card["n_layers"], card["n_heads"], card["n_kv_heads"]) == (2, 2, 2)
    assert (card["hidden_size"], card["context_length"]) == (32, 64)
    assert card["has_chat_template"] is False and card["n_params"] > 0

    from worker import loaded

    monkeypatch.setattr(loaded, "_registry", None)  # a worker started before the add
    created = reader.post("/api/v1/explorations/", {"model": KEY, "prompt": "Once upon"}, "json")
    assert created.status_code == 201, created.content
    steps = step(reader, created.json()["branches"][0]["id"], mode="greedy")
    assert len(steps) == 1 and steps[0]["distribution"]["vocab_size"] == entry.vocab_size


def _bert_folder(folder):
    from transformers import BertConfig

    config = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    config.architectures = ["BertForMaskedLM"]
    config.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: tmp / "missing", "does not exist"),
        (lambda tmp: tmp, "holds no config.json"),
        (_bert_folder, "is a BertForMaskedLM, not a causal language model"),
        (lambda tmp: "tokenlens-tests/no-such-model", "hub is switched off here (HF_HUB_OFFLINE)"),
    ],
    ids=["missing-folder", "no-config", "bert", "hub-offline"],
)
def test_a_reference_that_cannot_be_added_says_why_and_leaves_nothing(
    admin_api, tmp_path, make, fragment, django_capture_on_commit_callbacks, monkeypatch
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = _catalog_keys(admin_api)
    response = _add(admin_api, make(tmp_path), django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    job = admin_api.get(f"/api/v1/jobs/{response.json()['job']['id']}/").json()
    assert job["status"] == "failed"
    assert job["error"]["field"] == "reference"
    assert fragment in job["error"]["message"]
    assert not CatalogModel.objects.exists()
    assert _catalog_keys(admin_api) == before


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("", "Give a Hugging Face id"),
        ("  ", "Give a Hugging Face id"),
        ("../models/tiny", "absolute path"),
        ("two words", "Give a Hugging Face id"),
        ("owner/name/extra", "Give a Hugging Face id"),
        (12, "Give a text"),
        ("x" * 501, "at most 500"),
    ],
)
def test_a_malformed_reference_is_a_400_and_saves_nothing(admin_api, reference, fragment):
    response = admin_api.post("/api/v1/models/", {"reference": reference}, "json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "reference"
    assert fragment in response.json()["error"]["message"]
    assert not CatalogModel.objects.exists() and not Job.objects.exists()


def test_a_folder_name_too_long_for_a_catalog_key_is_a_400(admin_api):
    response = admin_api.post("/api/v1/models/", {"reference": "/srv/" + "m" * 250}, "json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == "reference"
    assert "too long: a catalog key is at most 200 characters (256 here)" in error["message"]
    assert not CatalogModel.objects.exists() and not Job.objects.exists()


def _ready_entry(key="local-raced") -> CatalogModel:
    return CatalogModel.objects.create(
        key=key, reference=f"/srv/{key}", label=key, source="local", status="ready"
    )


def test_an_exploration_on_a_model_removed_meanwhile_is_refused(admin_api, student, monkeypatch):
    from inspector.explorations import services

    entry = _ready_entry()

    def tokenize_while_an_admin_removes_it(kind, params, *args, **kwargs):
        assert admin_api.delete(f"/api/v1/models/{entry.key}/").status_code == 204
        return {}

    monkeypatch.setattr(services, "compute_now", tokenize_while_an_admin_removes_it)
    refused = client_for(student).post(
        "/api/v1/explorations/", {"model": entry.key, "prompt": "Hi"}, "json"
    )
    assert refused.status_code == 400, refused.content
    assert "was removed from the catalog meanwhile" in refused.json()["error"]["message"]
    assert not Exploration.objects.exists() and not CatalogModel.objects.exists()


def test_a_model_already_in_the_catalog_is_a_409(
    admin_api, tiny_gpt2_dir, settings, django_capture_on_commit_callbacks
):
    assert _add(admin_api, tiny_gpt2_dir, django_capture_on_commit_callbacks).status_code == 202
    again = _add(admin_api, tiny_gpt2_dir, django_capture_on_commit_callbacks)
    assert again.status_code == 409
    assert "already in the catalog" in again.json()["error"]["message"]
    CatalogModel.objects.all().delete()
    settings.TOKENLENS_EXTRA_MODELS = [str(tiny_gpt2_dir)]
    from_settings = _add(admin_api, tiny_gpt2_dir, django_capture_on_commit_callbacks)
    assert from_settings.status_code == 409
    assert not CatalogModel.objects.exists()


def test_a_model_being_added_is_a_409_and_a_dead_add_is_cleared(admin_api, tiny_gpt2_dir):
    first = admin_api.post("/api/v1/models/", {"reference": str(tiny_gpt2_dir)}, "json")
    assert first.status_code == 202  # its job is never run here (no on_commit)
    again = admin_api.post("/api/v1/models/", {"reference": str(tiny_gpt2_dir)}, "json")
    assert again.status_code == 409 and "being added already" in again.json()["error"]["message"]
    Job.objects.update(status=Job.Status.FAILED)  # its worker died without cleaning up
    assert (
        admin_api.post("/api/v1/models/", {"reference": str(tiny_gpt2_dir)}, "json").status_code
        == 202
    )
    assert CatalogModel.objects.count() == 1


def test_removing_an_added_model(
    admin_api, student, tiny_gpt2_dir, django_capture_on_commit_callbacks
):
    _add(admin_api, tiny_gpt2_dir, django_capture_on_commit_callbacks)
    exploration = Exploration.objects.create(model_key=KEY, prompt="Hi", owner=student)
    refused = admin_api.delete(f"/api/v1/models/{KEY}/")
    assert refused.status_code == 409
    assert "1 exploration uses tiny-gpt2" in refused.json()["error"]["message"]
    assert KEY in _catalog_keys(admin_api)
    exploration.delete()
    assert admin_api.delete(f"/api/v1/models/{KEY}/").status_code == 204
    assert KEY not in _catalog_keys(admin_api)
    assert AuditEvent.objects.filter(action="model.remove").count() == 1
    packaged = admin_api.delete("/api/v1/models/smollm2-135m-instruct/")
    assert (
        packaged.status_code == 400
        and "only models added here" in packaged.json()["error"]["message"]
    )
    assert admin_api.delete("/api/v1/models/nothing-here/").status_code == 404


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_admins_adding_one_folder_at_once_make_one_entry(tiny_gpt2_dir, monkeypatch):
    assert require_env("TOKENLENS_DATABASE_URL").startswith("postgres"), "races need PostgreSQL"
    from inspector.catalog import services

    monkeypatch.setattr(services, "_dispatch", lambda job: None)  # only the saving races
    admins = [client_for(make_person(name, staff=True)) for name in ("ada", "bob")]
    barrier = threading.Barrier(len(admins))
    answers = []

    def add(api):
        barrier.wait()
        try:
            answers.append(api.post("/api/v1/models/", {"reference": str(tiny_gpt2_dir)}, "json"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add, args=(api,)) for api in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [202, 409]
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert "being added already" in refused.json()["error"]["message"]
    assert CatalogModel.objects.count() == 1 and Job.objects.count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_removal_racing_new_explorations_never_leaves_one_on_a_removed_model(monkeypatch):
    assert require_env("TOKENLENS_DATABASE_URL").startswith("postgres"), "races need PostgreSQL"
    import random
    import time

    from inspector.explorations import services

    def tokenize(*_args, **_kwargs):  # the race is in the saving; tokenizing takes a moment
        time.sleep(random.uniform(0, 0.02))
        return {}

    monkeypatch.setattr(services, "compute_now", tokenize)
    admin = client_for(make_person("ada", staff=True))
    students = [client_for(make_person(f"student{index}")) for index in range(3)]
    for round_ in range(8):
        entry = _ready_entry(f"local-raced-{round_}")
        creating = [
            ("create", api.post, "/api/v1/explorations/", {"model": entry.key, "prompt": "Hi"})
            for api in students
        ]
        answers = _at_once([*creating, ("remove", admin.delete, f"/api/v1/models/{entry.key}/")])
        saved = Exploration.objects.filter(model_key=entry.key).count()
        removed = not CatalogModel.objects.filter(pk=entry.pk).exists()
        assert answers["remove"] == ([204] if removed else [409]), answers
        assert not (removed and saved), answers  # never an exploration on a removed model
        assert saved == answers["create"].count(201), answers
        assert set(answers["create"]) <= {201, 400}, answers


def _at_once(calls) -> dict[str, list[int]]:
    """Run (kind, method, url[, body]) calls from as many threads at once: each kind's status
    codes."""
    barrier = threading.Barrier(len(calls))
    answers: dict[str, list[int]] = {}

    def run(kind, method, *args):
        barrier.wait()
        try:
            status = method(*args, **({"format": "json"} if len(args) > 1 else {})).status_code
            answers.setdefault(kind, []).append(status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
