"""POST /api/v1/embeddings/ and /api/v1/vocabulary/: the contract, and bad input as a 400."""

import pytest
import torch

pytestmark = [pytest.mark.django_db, pytest.mark.model]

TEXT = "The cat sat on the mat"


def test_embeddings_returns_the_models_own_row(api, any_packaged_model):
    loaded = any_packaged_model
    payload = {"model": loaded.spec.key, "text": TEXT, "n_positions": 8}
    response = api.post("/api/v1/embeddings/", payload, "json")
    assert response.status_code == 200, response.content
    body = response.json()
    ids = [point["id"] for point in body["map"]["points"]]
    token = body["token"]
    assert ids == loaded.tokenizer(TEXT).input_ids and token["id"] == ids[-1]
    row = loaded.model.get_input_embeddings().weight[token["id"]].detach().float().cpu()
    assert torch.equal(torch.tensor(token["vector"]), row)
    assert len(token["neighbours"]) == 10 and body["map_error"] is None
    positions = body["positions"]
    assert positions["kind"] == "rotary" and positions["n_positions"] == 8
    assert all(len(rotary["angles"]) == 8 for rotary in positions["rotary"])


def test_embeddings_of_a_chosen_token_and_a_text_too_short_to_map(api):
    payload = {"model": "smollm2-135m-instruct", "text": "Hi", "token_id": 42}
    response = api.post("/api/v1/embeddings/", payload, "json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"]["id"] == 42
    assert body["map"] is None and body["map_error"]["field"] == "text"


@pytest.mark.parametrize("word", ["hello", " hello"])
def test_vocabulary_cuts_a_word_as_the_tokenizer_does(api, any_packaged_model, word):
    tokenizer = any_packaged_model.tokenizer
    payload = {"model": any_packaged_model.spec.key, "word": word}
    response = api.post("/api/v1/vocabulary/", payload, "json")
    assert response.status_code == 200, response.content
    forms = {form["text"]: form for form in response.json()["forms"]}
    for text in ("hello", " hello"):
        assert forms[text]["ids"] == tokenizer.encode(text, add_special_tokens=False)


def test_vocabulary_reads_a_number_as_a_token_id(api, smollm2):
    response = api.post(
        "/api/v1/vocabulary/", {"model": "smollm2-135m-instruct", "word": "#1234"}, "json"
    )
    assert response.status_code == 200
    entry = response.json()["by_id"]
    assert entry["id"] == 1234 and entry["piece"] == smollm2.tokenizer.convert_ids_to_tokens(1234)


@pytest.mark.parametrize(
    ("endpoint", "payload", "field", "fragment"),
    [
        ("embeddings", {"text": "Hi", "token_id": 10**7}, "token_id", "outside this model's"),
        ("embeddings", {"text": "Hi", "token_id": -1}, "token_id", "greater than or equal"),
        ("embeddings", {"text": "Hi", "n_positions": 5000}, "n_positions", "less than or equal"),
        ("embeddings", {"text": "  "}, "text", "whitespace"),
        ("embeddings", {"model": "nope", "text": "Hi"}, "model", "Unknown model 'nope'"),
        ("vocabulary", {"word": ""}, "word", "blank"),
        ("vocabulary", {"word": "   "}, "word", "Type a word"),
        ("vocabulary", {"word": "x" * 201}, "word", "200"),
        ("vocabulary", {"model": "nope", "word": "hi"}, "model", "Unknown model 'nope'"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, endpoint, payload, field, fragment):
    payload = {"model": "smollm2-135m-instruct", **payload}
    response = api.post(f"/api/v1/{endpoint}/", payload, "json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert fragment in error["message"]
