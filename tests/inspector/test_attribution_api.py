"""POST /api/v1/attribution/: one score per token read, by the method asked for."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from engine import attribution, precision

pytestmark = pytest.mark.django_db

TEXT = "The keeper lit the lamp at dusk and wrote in his"
GEMMA = {"model": "gemma-3-270m", "text": TEXT, "target_id": 9, "method": "saliency"}
URL = "/api/v1/attribution/"


@pytest.fixture(scope="module")
def answered(django_db_setup, django_db_blocker):
    """One integrated-gradients request over the text and two generated tokens, explaining
    the second generated token (position = its index - 1)."""
    attribution.clear_cache()
    # Module-scoped, so conftest's per-test inline-tasks setting does not reach here yet.
    with django_db_blocker.unblock(), override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        prompt = APIClient().post("/api/v1/tokenize/", GEMMA, "json").json()["count"]
        payload = {
            **GEMMA,
            "method": "integrated_gradients",
            "completion_ids": [506, 4389],
            "target_id": 4389,
            "position": prompt,  # 506's index: what the model predicted after it
            "n_steps": 4,
        }
        response = APIClient().post(URL, payload, "json")
    assert response.status_code == 200, response.content
    return prompt, response.json()


@pytest.mark.model
def test_the_answer_scores_every_token_before_the_explained_one(answered):
    prompt_count, body = answered
    assert set(body) == {
        "method",
        "explanation",
        "objective",
        "signed",
        "position",
        "n_tokens",
        "tokens",
        "scores",
        "target",
        "device",
        "precision",
        "bfloat16",
        "integrated_gradients",
    }
    assert body["precision"] == "float32" and body["bfloat16"] is None
    assert body["position"] == prompt_count and body["n_tokens"] == prompt_count + 1
    assert len(body["tokens"]) == len(body["scores"]) == body["n_tokens"]
    assert body["tokens"][-1]["id"] == 506 and body["tokens"][0]["special"]  # Gemma's <bos>
    assert body["target"]["id"] == 4389 and 0 < body["target"]["probability"] <= 1
    assert body["method"] == "integrated_gradients" and body["signed"] is True
    assert body["objective"] == "log_probability" and body["device"] == "cpu"


@pytest.mark.model
def test_integrated_gradients_come_with_their_bookkeeping(answered):
    _count, body = answered
    path = body["integrated_gradients"]
    assert path["n_steps"] == 4
    assert path["baseline"]["id"] == 236743 and path["baseline"]["text"] == " "  # a blank
    assert path["adaptive"] is False and path["converged"] is None and path["segments"] == 1
    assert path["f_difference"] == pytest.approx(path["f_input"] - path["f_baseline"])
    gap = abs(sum(body["scores"]) - path["f_difference"])
    assert gap == pytest.approx(abs(path["convergence_delta"]), abs=1e-3)


@pytest.mark.model
def test_left_out_steps_refine_the_path_until_it_converges():
    payload = {**GEMMA, "model": "smollm2-135m-instruct", "method": "integrated_gradients"}
    payload.pop("n_steps", None)
    response = APIClient().post(URL, payload, "json")
    assert response.status_code == 200, response.content
    path = response.json()["integrated_gradients"]
    assert path["adaptive"] is True and path["n_steps"] >= 32
    assert path["tolerance"] == pytest.approx(max(0.05 * abs(path["f_difference"]), 1e-3))
    assert path["converged"] is (
        abs(path["convergence_delta"]) <= path["tolerance"]
        and path["largest_segment_delta"] <= path["tolerance"]
    )
    assert abs(path["convergence_delta"]) <= path["delta_bound"] + 1e-9


@pytest.mark.model
def test_bfloat16_where_it_is_not_offered_is_a_400_saying_why(monkeypatch):
    precision.forget_checks()
    monkeypatch.setattr(precision, "gemm_speedup", lambda _device: 0.5)
    payload = {**GEMMA, "method": "input_x_gradient", "precision": "bfloat16"}
    response = APIClient().post(URL, payload, "json")
    precision.forget_checks()
    assert response.status_code == 400, response.content
    assert "bfloat16 is not offered here" in response.content.decode()
    assert "precision" in response.content.decode()


@pytest.mark.model
@pytest.mark.parametrize("method", list(attribution.METHODS))
def test_every_method_answers_with_one_score_per_token(method):
    response = APIClient().post(
        URL, {**GEMMA, "model": "smollm2-135m-instruct", "method": method, "n_steps": 2}, "json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["method"] == method and body["explanation"] == attribution.METHODS[method]
    assert len(body["scores"]) == body["n_tokens"] == body["position"] + 1
    assert (body["integrated_gradients"] is None) == (method != "integrated_gradients")


@pytest.mark.model
@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"method": "shap"}, "method", '"shap" is not a valid choice'),
        ({"target_id": -1}, "target_id", "greater than or equal to 0"),
        ({"target_id": 262144}, "target_id", "outside this model's vocabulary"),
        ({"position": -1}, "position", "greater than or equal to 0"),
        ({"position": 99}, "position", "not a token of this sequence"),
        ({"n_steps": 0}, "n_steps", "greater than or equal to 1"),
        ({"n_steps": 129}, "n_steps", "less than or equal to 128"),
        ({"model": "nope"}, "model", "Unknown model 'nope'"),
        ({"text": "   "}, "text", "whitespace"),
        ({"completion_ids": [10**9]}, "completion_ids", "outside"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(changes, field, fragment):
    payload = {**GEMMA, **changes}
    response = APIClient().post(URL, payload, "json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert fragment in error["message"]


@pytest.mark.model
def test_a_missing_target_or_method_is_named(api):
    for missing in ("target_id", "method"):
        payload = {key: value for key, value in GEMMA.items() if key != missing}
        response = api.post(URL, payload, "json")
        assert response.status_code == 400
        assert response.json()["error"]["field"] == missing
