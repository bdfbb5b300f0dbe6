"""POST /api/v1/logit-lens/: every layer's reading at one position, the tokens followed
through the layers, an optional contrast, and 400s that name the field."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

TEXT = "The capital of France is Paris. The capital of Germany is"
SMOLLM2 = {"model": "smollm2-135m-instruct", "text": TEXT}
URL = "/api/v1/logit-lens/"


@pytest.fixture(scope="module")
def answered(django_db_setup, django_db_blocker):
    """One real request (a contrast of a text and an id, top 5), shared by the module."""
    berlin = 11452  # " Berlin" in SmolLM2's vocabulary
    # Module-scoped, so conftest's per-test inline-tasks setting does not reach here yet.
    with django_db_blocker.unblock(), override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        response = APIClient().post(
            URL, {**SMOLLM2, "top_k": 5, "contrast": [berlin, " Paris"]}, "json"
        )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.model
def test_every_layer_is_read_at_the_last_position(answered):
    assert answered["position"] == answered["n_tokens"] - 1 == len(answered["tokens"]) - 1
    assert answered["token"] == answered["tokens"][-1] and answered["next_token"] is None
    rows = answered["rows"]
    assert [row["depth"] for row in rows] == list(range(31))
    assert rows[0]["label"] == "embeddings" and rows[0]["layer"] is None
    assert rows[-1]["layer"] == 29 and rows[-1]["top"][0]["text"] == " Berlin"
    assert all(len(row["top"]) == 5 for row in rows)
    assert set(rows[-1]["top"][0]) == {"id", "text", "special", "probability", "logit"}
    assert answered["vocab_size"] == 49152 and answered["softcapping"] is None


@pytest.mark.model
def test_the_final_top_token_is_followed_through_every_layer(answered):
    (chosen,) = answered["chosen"]
    assert chosen["reasons"] == ["final_top"] and chosen["text"] == " Berlin"
    assert chosen["ranks"][-1] == 1 and len(chosen["probabilities"]) == 31
    assert chosen["probabilities"][-1] == answered["rows"][-1]["top"][0]["probability"]


@pytest.mark.model
def test_the_contrast_says_which_layers_favour_which_token(answered):
    contrast = answered["contrast"]
    assert contrast["a"]["text"] == " Berlin" and contrast["a"]["given"] == 11452
    assert contrast["b"]["text"] == " Paris" and contrast["b"]["given"] == " Paris"
    assert contrast["note"] is None and contrast["final_favours"] == "a"
    rows = contrast["rows"]
    assert all(row["logit_diff"] == pytest.approx(row["logit_a"] - row["logit_b"]) for row in rows)
    assert sorted(contrast["favour_a"] + contrast["favour_b"]) == list(range(31))
    assert rows[-1]["p_a"] == answered["chosen"][0]["probabilities"][-1]


@pytest.mark.model
def test_an_earlier_position_follows_the_token_that_comes_next():
    body = {**SMOLLM2, "position": 4, "chosen_ids": [], "contrast": None}
    result = APIClient().post(URL, body, "json").json()
    assert result["next_token"] == result["tokens"][5]
    assert result["chosen"][0]["id"] == result["tokens"][5]["id"]
    assert result["chosen"][0]["reasons"][0] == "next_token"


@pytest.mark.model
@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({**SMOLLM2, "position": 100}, "position", "outside this sequence"),
        ({**SMOLLM2, "position": -100}, "position", "outside this sequence"),
        ({**SMOLLM2, "top_k": 0}, "top_k", "greater than or equal to 1"),
        ({**SMOLLM2, "top_k": 51}, "top_k", "less than or equal to 50"),
        ({**SMOLLM2, "chosen_ids": [10**9]}, "chosen_ids", "outside this model's vocabulary"),
        ({**SMOLLM2, "chosen_ids": [-1]}, "chosen_ids", "outside"),
        ({**SMOLLM2, "contrast": [" Paris"]}, "contrast", "two tokens"),
        ({**SMOLLM2, "contrast": ["", " Paris"]}, "contrast", "non-empty text"),
        ({**SMOLLM2, "contrast": [True, 5]}, "contrast", "not True"),
        ({**SMOLLM2, "contrast": [5, 10**9]}, "contrast", "outside"),
        ({**SMOLLM2, "text": "  "}, "text", "whitespace"),
        ({"model": "nope", "text": TEXT}, "model", "Unknown model 'nope'"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(payload, field, fragment):
    response = APIClient().post(URL, payload, "json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert fragment in error["message"]
