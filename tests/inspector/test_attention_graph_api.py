"""POST /api/v1/attention/graph/: the strongest attention links of a layer range, as edges
(the strongest max_edges of those the rule lets through, with their count); every bad input a
400 naming its field; the same people, budget and cache scopes as
/api/v1/attention/ (it takes a text, not a branch: what anyone may analyse)."""

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from engine.attention import unpack
from engine.limits import DEFAULT_GRAPH_MAX_EDGES, MAX_GRAPH_EDGES
from inspector.compute import budget, routing
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
TEXT = "The keeper climbed the stairs and wrote the weather in his book."
GRAPH = "/api/v1/attention/graph/"


def graph(client, **fields):
    return client.post(GRAPH, {"model": SMOL, "text": TEXT, **fields}, "json")


@pytest.mark.model
def test_the_edges_are_the_top_k_of_the_attention_endpoints_maps():
    api = APIClient()
    response = graph(api, first_layer=3, last_layer=4, heads=[2, 7], k=2)
    assert response.status_code == 200, response.content
    body = response.json()
    maps_body = api.post(
        "/api/v1/attention/",
        {"model": SMOL, "text": TEXT, "layers": [3, 4], "heads": [2, 7], "encoding": "float16"},
        "json",
    ).json()
    n = body["n_tokens"]
    maps = unpack(maps_body["data"], "float16", (2, 2, n, n))
    edges = body["edges"]
    assert body["layers"] == [3, 4] and body["heads"] == [2, 7] and body["k"] == 2
    assert body["n_edges"] == len(edges["weight"]) == 2 * 2 * (2 * n - 1)
    assert set(edges) == {"layer", "head", "query", "key", "weight"}
    for layer, head, query, key, weight in zip(*edges.values(), strict=True):
        row = maps[layer - 3, [2, 7].index(head), query, : query + 1]
        assert key <= query and abs(float(row[key]) - weight) < 2e-3
        assert weight >= float(row.topk(min(2, query + 1)).values[-1]) - 2e-3


@pytest.mark.model
def test_a_threshold_sends_only_the_links_above_it_and_can_skip_the_first_token():
    body = graph(APIClient(), rule="threshold", threshold=0.25, skip_first=True).json()
    assert body["rule"] == "threshold" and body["threshold"] == 0.25 and body["k"] is None
    assert body["layers"] == list(range(30)) and body["n_edges"] > 0
    assert min(body["edges"]["weight"]) >= 0.25 and 0 not in body["edges"]["key"]


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"first_layer": 5, "last_layer": 2}, "last_layer", "may not come after the last"),
        ({"first_layer": -1}, "first_layer", "greater than or equal to 0"),
        ({"k": 0}, "k", "greater than or equal to 1"),
        ({"k": 9}, "k", "less than or equal to 8"),
        ({"threshold": 0.001}, "threshold", "greater than or equal to 0.01"),
        ({"threshold": 1.5}, "threshold", "less than or equal to 1"),
        ({"threshold": True}, "threshold", "valid number"),
        ({"rule": "strongest"}, "rule", "not a valid choice"),
        ({"max_edges": 0}, "max_edges", "greater than or equal to 1"),
        ({"max_edges": MAX_GRAPH_EDGES + 1}, "max_edges", "less than or equal to 100000"),
        ({"max_edges": "many"}, "max_edges", "valid integer"),
        ({"heads": [-1]}, "heads[0]", "greater than or equal to 0"),
        ({"text": "   "}, "text", "only whitespace"),
        ({"model": "gpt-9"}, "model", "Unknown model"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(fields, field, fragment):
    response = graph(APIClient(), **fields)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and fragment in error["message"], error


@pytest.mark.model
@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"first_layer": 30}, "first_layer", "this model has 30 layers (0–29)"),
        ({"last_layer": 30}, "last_layer", "this model has 30 layers (0–29)"),
        ({"heads": [0, 9]}, "heads", "this model has 9 heads (0–8)"),
    ],
)
def test_layers_and_heads_the_model_lacks_are_refused_naming_the_field(fields, field, fragment):
    error = graph(APIClient(), **fields).json()["error"]
    assert error["field"] == field and fragment in error["message"], error


@pytest.mark.model
def test_only_the_strongest_max_edges_are_sent_and_the_answer_says_how_many_met_the_rule(
    settings,
):
    settings.TOKENLENS_VISITOR_BUDGET = 10**9
    long_text = "The keeper climbed the stairs and wrote the weather. " * 3
    api = APIClient()
    every = graph(api, text=long_text, k=8, max_edges=MAX_GRAPH_EDGES).json()
    assert every["n_matching"] == every["n_edges"] > DEFAULT_GRAPH_MAX_EDGES
    default = graph(api, text=long_text, k=8).json()
    assert default["max_edges"] == DEFAULT_GRAPH_MAX_EDGES
    assert default["n_matching"] == every["n_matching"]
    assert default["n_edges"] == len(default["edges"]["weight"]) == DEFAULT_GRAPH_MAX_EDGES
    few = graph(api, text=long_text, k=8, max_edges=500).json()
    assert few["n_matching"] == every["n_matching"] and few["n_edges"] == 500
    weakest_kept = min(few["edges"]["weight"])
    assert sorted(every["edges"]["weight"], reverse=True)[499] == weakest_kept
    kept = set(
        zip(*(few["edges"][name] for name in ("layer", "head", "query", "key")), strict=True)
    )
    assert kept <= set(
        zip(*(every["edges"][name] for name in ("layer", "head", "query", "key")), strict=True)
    )
    layers = few["edges"]["layer"]
    assert layers == sorted(layers)  # still ordered by layer, head, query


def test_it_is_priced_like_the_attention_maps_of_its_layers():
    sequence = {"model": SMOL, "text": TEXT}
    graph_price = budget.price("attention_graph", {**sequence, "first_layer": 2, "last_layer": 9})
    maps_price = budget.price("attention", {**sequence, "layers": list(range(2, 10))})
    assert graph_price == maps_price
    assert budget.price("attention_graph", sequence)[0] > maps_price[0]  # every layer: dearer
    attention_route = routing.route("attention", {**sequence, "layers": [1]})
    assert routing.route("attention_graph", sequence) == attention_route  # its layer inputs


def test_a_visitor_over_the_budget_is_refused_as_for_attention(settings, monkeypatch):
    cache.clear()
    monkeypatch.setattr(budget, "WINDOW_SECONDS", 10**9)
    done = lambda *_args, **_kwargs: {"result": {}}  # noqa: E731 (the worker's answer)
    monkeypatch.setattr("inspector.compute.services.dispatch.call", done)
    settings.TOKENLENS_VISITOR_BUDGET = 10
    dear = graph(APIClient())
    assert dear.status_code == 400 and dear.json()["error"]["field"] == "text"
    assert "the most one request may cost is 10" in dear.json()["error"]["message"]
    settings.TOKENLENS_VISITOR_BUDGET = 100
    visitor = APIClient()
    visitor.get("/explore/")  # a browser session
    answers = [graph(visitor, first_layer=0, last_layer=0).status_code for _ in range(6)]
    assert answers[0] == 200 and answers[-1] == 429
    maps = visitor.post("/api/v1/attention/", {"model": SMOL, "text": TEXT, "layers": [0]}, "json")
    assert maps.status_code == 429  # one budget for both


def test_each_caller_reads_in_the_same_cache_scope_as_their_attention(student, monkeypatch):
    scopes = []
    monkeypatch.setattr(
        "inspector.analysis.api.services.compute_now",
        lambda kind, params: scopes.append((kind, params["cache_scope"])) or {},
    )
    script = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=student).key}")
    session_visitor = APIClient()
    session_visitor.get("/explore/")
    callers = [APIClient(), session_visitor, client_for(student), script]
    for client in callers:
        assert graph(client, first_layer=0, last_layer=0).status_code == 200
        maps = {"model": SMOL, "text": TEXT, "layers": [0]}
        assert client.post("/api/v1/attention/", maps, "json").status_code == 200
    kinds = [kind for kind, _scope in scopes]
    assert kinds == ["attention_graph", "attention"] * len(callers)
    pairs = [scopes[i][1] for i in range(0, len(scopes), 2)]
    assert pairs == [scopes[i][1] for i in range(1, len(scopes), 2)]
    assert len(set(pairs)) == 3  # the student's page and script share one; visitors their own


def test_a_bad_token_is_refused_as_for_attention():
    script = APIClient(HTTP_AUTHORIZATION="Token not-a-real-key")
    refused = graph(script)
    maps = script.post("/api/v1/attention/", {"model": SMOL, "text": TEXT, "layers": [0]}, "json")
    assert refused.status_code == maps.status_code == 403
    assert refused.json() == maps.json() and "Invalid token" in refused.json()["error"]["message"]


def test_the_schema_documents_it(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/attention/graph/"]["post"]
    assert {"200", "400", "429"} <= set(operation["responses"])
    body = schema["components"]["schemas"]["AttentionGraphRequestRequest"]["properties"]
    assert {"first_layer", "last_layer", "heads", "rule", "k", "threshold", "skip_first"} <= set(
        body
    )
