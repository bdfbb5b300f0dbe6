"""The permission matrix of models added from the page: each role against listing, adding and
removing, through the API and the pages. Everyone reads the catalog; only admins add and
remove, and a refused request changes nothing (no entry, no job, no activity line)."""

import pytest

from inspector.models import AuditEvent, CatalogModel, Job
from tests.conftest import make_person
from tests.inspector.makers import browser

pytestmark = pytest.mark.django_db

ROLES = ["visitor", "student", "instructor", "admin"]
ACTIONS = ["api-list", "api-add", "api-remove", "page-list", "page-add", "page-remove"]
REFUSED = {
    "api-list": 200,
    "api-add": 403,
    "api-remove": 403,
    "page-list": 200,
    "page-add": 403,
    "page-remove": 403,  # the catalog is public: a refusal hides nothing
}
ALLOWED = {
    "api-list": 200,
    "api-add": 202,
    "api-remove": 204,
    "page-list": 200,
    "page-add": 302,
    "page-remove": 302,
}
KEY = "local-tiny-gpt2"


def _person(role):
    if role == "visitor":
        return None
    if role == "admin":
        return make_person("ada", staff=True)
    return make_person(role, role.capitalize())


@pytest.fixture
def ready_entry(tiny_gpt2_dir):
    """A model added earlier by another admin, ready (its card as the worker wrote it)."""
    entry = CatalogModel.objects.create(
        key="local-ready-one", reference="/srv/models/ready-one", label="ready-one",
        source="local", added_by=make_person("root", staff=True),
    )  # fmt: skip
    card = {"architecture": "GPT2LMHeadModel", "n_layers": 2, "n_heads": 2, "n_kv_heads": 2,
            "hidden_size": 32, "vocab_size": 300, "context_length": 64, "n_params": 100,
            "has_chat_template": False}  # fmt: skip
    entry.mark_ready(card)
    return entry


def _state() -> tuple:
    return (
        sorted(CatalogModel.objects.values_list("key", "status")),
        Job.objects.count(),
        AuditEvent.objects.count(),
    )


def _do(client, action, folder) -> int:
    api_json = {"content_type": "application/json"}
    if action == "api-list":
        return client.get("/api/v1/models/").status_code
    if action == "api-add":
        return client.post("/api/v1/models/", {"reference": str(folder)}, **api_json).status_code
    if action == "api-remove":
        return client.delete("/api/v1/models/local-ready-one/").status_code
    if action == "page-list":
        return client.get("/models/").status_code
    if action == "page-add":
        return client.post("/models/add/", {"reference": str(folder)}).status_code
    return client.post("/models/local-ready-one/remove/").status_code


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_the_matrix(role, action, ready_entry, tiny_gpt2_dir, django_capture_on_commit_callbacks):
    client = browser(_person(role))
    before = _state()
    with django_capture_on_commit_callbacks(execute=False):  # nothing runs the job here
        status = _do(client, action, tiny_gpt2_dir)
    expected = ALLOWED if role == "admin" else REFUSED
    assert status == expected[action]
    changes = action.endswith(("add", "remove")) and role == "admin"
    assert (_state() != before) == changes
    if action == "api-list":
        models = {entry["key"]: entry for entry in client.get("/api/v1/models/").json()["models"]}
        assert "local-ready-one" in models  # everyone's catalog has a ready added model
        added_by = models["local-ready-one"]["added_by"]
        assert added_by == ("root" if role == "admin" else None)


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_see_the_add_form_and_remove_buttons(role, ready_entry):
    html = browser(_person(role)).get("/models/").content.decode()
    assert "ready-one" in html
    # Which admin added it (a username) is for admins; the others read where it came from.
    assert ("added by root" in html) == (role == "admin")
    assert ("added from this page" in html) == (role != "admin")
    assert ('data-action="add-model"' in html) == (role == "admin")
    assert ('data-action="remove-model"' in html) == (role == "admin")


def test_a_model_being_added_is_in_nobodys_catalog(tiny_gpt2_dir):
    CatalogModel.objects.create(
        key=KEY, reference=str(tiny_gpt2_dir), label="tiny-gpt2", source="local",
        job=Job.objects.create(kind=Job.Kind.ADD_MODEL, model_key=KEY),
    )  # fmt: skip
    for role in ROLES:
        client = browser(_person(role))
        keys = [entry["key"] for entry in client.get("/api/v1/models/").json()["models"]]
        assert KEY not in keys
        refused = client.post(
            "/api/v1/explorations/", {"model": KEY, "prompt": "Hi"}, content_type="application/json"
        )
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "model"
