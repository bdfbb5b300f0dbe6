"""POST /api/v1/sampling/: the next token's sampling pipeline taken apart, and its refusals."""

import pytest

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


def _post(api, path="sampling", **payload):
    payload.setdefault("model", SMOL)
    payload.setdefault("prompt", PROMPT)
    return api.post(f"/api/v1/{path}/", payload, "json")


def test_the_stages_end_where_the_distribution_does(api):
    params = {"temperature": 0.7, "top_k": 5, "seed": 1}
    response = _post(api, params=params, completion_ids=[12366], draws=10)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["stages"][0] == "raw" and body["stages"][-1] == "min_p"
    distribution = _post(api, "distribution", params=params, completion_ids=[12366]).json()
    final = {token["id"]: token["p_final"] for token in distribution["tokens"]}
    for trace in body["traces"]:
        if trace["token"]["id"] in final:
            # one full pass here, cached states there: the same within float noise
            assert trace["probabilities"][-1] == pytest.approx(
                final[trace["token"]["id"]], abs=1e-5
            )
    assert [sweep["name"] for sweep in body["sweeps"]] == ["temperature", "top_p", "top_k"]
    assert len(body["temperature"]["values"]) == 20 and body["temperature"]["current"] == 0.7
    assert {rule["name"] for rule in body["rules"]} >= {"greedy", "top_p", "current"}
    current = next(rule for rule in body["rules"] if rule["name"] == "current")
    assert current["n_kept"] == distribution["n_kept"] == 5
    assert sum(draw["count"] for draw in current["draws"]) == 10


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"draws": 0}, "draws"),
        ({"draws": 5000}, "draws"),
        ({"params": {"top_p": 0}}, "top_p"),
        ({"completion_ids": [10**9]}, "completion_ids"),
        ({"prompt": "   "}, "prompt"),
    ],
)
def test_bad_input_says_which_field(api, payload, field):
    response = _post(api, **payload)
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
