"""The REST API's common behaviour: the catalog, tokenization, errors, no worker."""

import pytest
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from engine.attention import unpack
from inspector.compute import dispatch
from inspector.compute import heartbeat as worker_heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def test_models_lists_the_catalog_with_facts(api):
    response = api.get("/api/v1/models/")
    assert response.status_code == 200
    models = {m["key"]: m for m in response.json()["models"]}
    assert {"smollm2-135m-instruct", "gemma-3-270m"} <= set(models)
    smol = models["smollm2-135m-instruct"]
    assert smol["n_layers"] == 30 and smol["n_kv_heads"] == 3 and smol["has_chat_template"]
    assert smol["prepared"] is True and isinstance(smol["loaded"], bool)


def test_tokenize_returns_the_contract(api, smollm2):
    response = api.post(
        "/api/v1/tokenize/", {"model": "smollm2-135m-instruct", "text": "Hello world"}, "json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    assert [t["id"] for t in body["tokens"]] == smollm2.tokenizer("Hello world").input_ids
    assert set(body["tokens"][0]) >= {"id", "text", "start", "end", "special"}
    assert body["tokens"][1]["text"] == " world"


def test_tokenize_with_the_chat_template(api):
    response = api.post(
        "/api/v1/tokenize/",
        {
            "model": "smollm2-135m-instruct",
            "text": "Hi",
            "system_prompt": "Be brief",
            "use_chat_template": True,
        },
        "json",
    )
    assert response.status_code == 200
    assert any(t["special"] for t in response.json()["tokens"])


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"model": "nope", "text": "hi"}, "model", "Unknown model 'nope'"),
        ({"model": "smollm2-135m-instruct", "text": ""}, "text", "blank"),
        ({"model": "smollm2-135m-instruct", "text": "   "}, "text", "whitespace"),
        ({"model": "smollm2-135m-instruct"}, "text", "required"),
        ({"model": "smollm2-135m-instruct", "text": "word " * 9000}, "text", "8,192 tokens"),
        (
            {"model": "gemma-3-270m", "text": "hi", "use_chat_template": True},
            "use_chat_template",
            "no chat template",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, payload, field, fragment):
    response = api.post("/api/v1/tokenize/", payload, "json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field
    assert fragment in error["message"]


def test_malformed_json_is_a_400(api):
    response = api.post("/api/v1/tokenize/", "{oops", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["error"]["message"]


def test_a_model_that_fails_to_load_is_a_400(api, settings, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    settings.TOKENLENS_EXTRA_MODELS = [str(tmp_path)]
    key = [m["key"] for m in api.get("/api/v1/models/").json()["models"]][-1]
    response = api.post("/api/v1/tokenize/", {"model": key, "text": "hi"}, "json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "model"
    assert "Could not load" in response.json()["error"]["message"]


def test_an_unreachable_broker_is_a_503(api, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.TOKENLENS_TASKS_IN_PROCESS = False

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(dispatch.app, "send_task", refuse)
    monkeypatch.setattr(
        worker_heartbeat, "live_workers", lambda: {"w:1": ["smollm2-135m-instruct"]}
    )
    response = api.post(
        "/api/v1/tokenize/", {"model": "smollm2-135m-instruct", "text": "hi"}, "json"
    )
    assert response.status_code == 503
    assert "unreachable" in response.json()["error"]["message"]


def test_attention_comes_back_compact_and_names_bad_layers():
    api = APIClient()
    payload = {"model": "smollm2-135m-instruct", "text": "Hello there, world", "layers": [2]}
    response = api.post("/api/v1/attention/", {**payload, "heads": [1, 4]}, "json")
    assert response.status_code == 200, response.content
    body = response.json()
    n = body["n_tokens"]
    maps = unpack(body["data"], body["encoding"], (1, 2, n, n))
    assert abs(float(maps[0, 0].sum()) - n) < n / 100
    assert body["kv_head_of"] == [0, 1]
    bad = api.post("/api/v1/attention/", {**payload, "layers": [30]}, "json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "layers"
