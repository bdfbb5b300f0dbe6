"""POST /api/v1/distribution/: the next-token distribution and its refusals."""

import pytest
import torch

from engine.distribution import next_token_logits, prompt_ids

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


def _post(api, **payload):
    payload.setdefault("model", SMOL)
    payload.setdefault("prompt", PROMPT)
    return api.post("/api/v1/distribution/", payload, "json")


def test_it_returns_the_contract_fields(api):
    response = _post(api, params={"temperature": 0.7, "top_k": 5, "seed": 1}, top_n=10)
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["tokens"]) == 10 and body["n_kept"] == 5
    first = body["tokens"][0]
    assert set(first) >= {
        "id",
        "text",
        "logit",
        "p_base",
        "p_final",
        "kept",
        "valid",
        "rank",
        "removed_by",
    }
    assert first["text"] == " Paris" and first["rank"] == 1 and first["kept"]
    assert abs(sum(t["p_final"] for t in body["tokens"] if t["kept"]) - 1) < 1e-5
    assert {t["removed_by"] for t in body["tokens"][5:]} == {"top_k"}
    assert body["chosen"]["kept"] and body["entropy"] < body["entropy_base"]
    assert 0 < body["kept_mass"] <= 1


def test_greedy_chooses_the_argmax_of_the_real_model(api, smollm2):
    logits = next_token_logits(smollm2, prompt_ids(smollm2, PROMPT, None, False))
    body = _post(api, params={"temperature": 0}).json()
    assert body["chosen"]["id"] == int(torch.argmax(logits)) == body["tokens"][0]["id"]
    assert body["n_kept"] == 1 and body["tokens"][0]["p_final"] == 1.0
    assert body["tokens"][1]["removed_by"] == "temperature"


def test_the_same_seed_and_step_give_the_same_token(api):
    params = {"temperature": 1.5, "seed": 42}
    first = _post(api, params=params, completion_ids=[12095]).json()["chosen"]["id"]
    again = _post(api, params=params, completion_ids=[12095]).json()["chosen"]["id"]
    assert first == again


def test_completion_ids_continue_the_prompt(api, smollm2):
    paris = smollm2.tokenizer(" Paris").input_ids
    body = _post(api, completion_ids=paris, params={"temperature": 0}).json()
    assert body["chosen"]["text"] in {".", ",", "\n", " and", " is"}


def test_the_chat_template_is_applied(api):
    body = _post(api, prompt="Say hi", use_chat_template=True, params={"greedy": True}).json()
    assert body["chosen"]["kept"]


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"params": {"top_p": 1.5}}, "params.top_p", "at most 1"),
        ({"params": {"temperature": -1}}, "params.temperature", "or between 0.01 and 100"),
        ({"params": {"top_k": "many"}}, "params.top_k", "whole number"),
        ({"completion_ids": [10**9]}, "completion_ids", "outside this model's vocabulary"),
        ({"completion_ids": [-3]}, "completion_ids[0]", "greater than or equal to 0"),
        ({"prompt": "  "}, "prompt", "empty"),
        ({"top_n": 500}, "top_n", "less than or equal to 100"),
        ({"model": "nope"}, "model", "Unknown model"),
        ({"constraint": {"type": "regex", "spec": "[0-9"}}, "constraint.spec", "Invalid regex"),
        ({"constraint": {"type": "cfg", "spec": "start: foo"}}, "constraint.spec", "unknown name"),
        (
            {"constraint": {"type": "json_schema", "spec": {"type": "objectx"}}},
            "constraint.spec",
            "Invalid JSON schema",
        ),
        ({"constraint": {"type": "choice", "spec": []}}, "constraint.spec", "non-empty list"),
        ({"constraint": {"type": "xml", "spec": "<a/>"}}, "constraint.type", "not a valid choice"),
        (
            {"constraint": {"type": "choice", "spec": ["yes", "no"]}, "completion_ids": [28]},
            "completion_ids",
            "not allowed by the constraint",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, payload, field, fragment):
    response = _post(api, **payload)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert fragment in error["message"]


def test_a_constraint_marks_the_tokens_it_forbids(api):
    constraint = {"type": "choice", "spec": [" Lyon", " Marseille"]}
    response = _post(api, constraint=constraint, top_n=30, params={"temperature": 1.0})
    assert response.status_code == 200, response.content
    tokens = response.json()["tokens"]
    kept = [token for token in tokens if token["kept"]]
    assert kept and all(
        " Lyon".startswith(t["text"]) or " Marseille".startswith(t["text"]) for t in kept
    )
    paris = next(token for token in tokens if token["text"] == " Paris")
    assert paris["valid"] is False and paris["removed_by"] == "constraint"
    assert paris["p_final"] == 0 and paris["p_base"] > 0.1
