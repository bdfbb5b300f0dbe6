"""POST /api/v1/heads/: every head with its features, 2-D position and labelled cluster."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

TEXT = "The keeper lit the lamp at dusk and wrote the weather in his logbook before bed."
GEMMA = {"model": "gemma-3-270m", "text": TEXT}


@pytest.fixture(scope="module")
def answered(django_db_setup, django_db_blocker):
    """One real request (k=3, two generated tokens after the text), shared by the module."""
    # Module-scoped, so conftest's per-test inline-tasks setting does not reach here yet.
    with django_db_blocker.unblock(), override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        response = APIClient().post(
            "/api/v1/heads/", {**GEMMA, "k": 3, "seed": 7, "completion_ids": [506, 4389]}, "json"
        )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.model
def test_every_head_comes_back_once_with_its_cluster(answered):
    heads = answered["heads"]
    grid = [(layer, head) for layer in range(18) for head in range(4)]
    assert [(h["layer"], h["head"]) for h in heads] == grid
    assert {h["kv_head"] for h in heads} == {0}  # Gemma 3 270M: one key/value head
    assert {h["cluster"] for h in heads} == {0, 1, 2} and answered["k"] == 3
    assert all(
        set(h) == {"layer", "head", "kv_head", "features", "x", "y", "cluster"} for h in heads
    )
    names = answered["feature_names"]
    assert names == ["entropy", "distance", "previous", "sink", "self"]
    assert all(list(h["features"]) == names for h in heads)


@pytest.mark.model
def test_clusters_have_unique_labels_and_add_up(answered):
    clusters = answered["clusters"]
    assert [c["id"] for c in clusters] == [0, 1, 2]
    assert len({c["label"] for c in clusters}) == 3
    assert sum(c["size"] for c in clusters) == 72
    assert all(c["description"] for c in clusters)
    assert all(list(c["mean_features"]) == answered["feature_names"] for c in clusters)
    assert answered["umap"] == {"n_neighbors": 15, "min_dist": 0.1}


@pytest.mark.model
def test_generated_tokens_are_read_after_the_text(answered, gemma):
    prompt = gemma.tokenizer(TEXT).input_ids
    assert answered["tokens"] == len(prompt) + 2


@pytest.mark.model
def test_the_same_seed_gives_the_same_map(answered):
    again = APIClient().post(
        "/api/v1/heads/", {**GEMMA, "k": 3, "seed": 7, "completion_ids": [506, 4389]}, "json"
    )
    assert again.json() == answered


@pytest.mark.model
@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({**GEMMA, "k": 0}, "k", "greater than or equal to 1"),
        ({**GEMMA, "k": 9}, "k", "less than or equal to 8"),
        ({**GEMMA, "seed": -1}, "seed", "greater than or equal to 0"),
        ({**GEMMA, "text": "   "}, "text", "whitespace"),
        ({"model": "nope", "text": TEXT}, "model", "Unknown model 'nope'"),
        ({"model": "smollm2-135m-instruct", "text": "Hello"}, "text", "at least 2 tokens"),
        ({**GEMMA, "text": "word " * 2100}, "text", "at most 2,048 tokens"),
        ({**GEMMA, "completion_ids": [10**9]}, "completion_ids", "outside"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(payload, field, fragment):
    response = APIClient().post("/api/v1/heads/", payload, "json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert fragment in error["message"]
