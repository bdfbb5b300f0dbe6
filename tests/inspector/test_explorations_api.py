"""Explorations, branches and steps through the REST API (tasks run inline, real SmolLM2)."""

import pytest
import torch
from rest_framework.test import APIClient

from engine.distribution import next_token_logits, prompt_ids
from inspector.models import Branch, Step
from worker.loaded import loaded_model

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


@pytest.fixture
def exploration(api):
    response = api.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": PROMPT, "params": {"temperature": 0.8, "seed": 3}},
        "json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def _root(exploration):
    return exploration["branches"][0]["id"]


def _step(api, branch_id, **payload):
    return api.post(f"/api/v1/branches/{branch_id}/steps/", payload, "json")


def test_creating_an_exploration_makes_its_main_branch(exploration):
    assert exploration["model"] == SMOL
    assert [branch["label"] for branch in exploration["branches"]] == ["main"]
    assert exploration["params"]["seed"] == 3


def test_steps_are_recorded_with_their_distribution(api, exploration):
    branch_id = _root(exploration)
    for _ in range(3):
        assert _step(api, branch_id).status_code == 201
    greedy = _step(api, branch_id, mode="greedy").json()["steps"][0]
    assert greedy["mode"] == "greedy" and greedy["index"] == 3
    branch = api.get(f"/api/v1/branches/{branch_id}/").json()
    assert [step["index"] for step in branch["steps"]] == [0, 1, 2, 3]
    first = branch["steps"][0]
    assert first["mode"] == "sampled"
    assert len(first["distribution"]["tokens"]) == 20
    assert first["distribution"]["chosen"]["id"] == first["token_id"]
    loaded = loaded_model(SMOL)
    full = next_token_logits(loaded, prompt_ids(loaded, PROMPT, None, False)).softmax(-1)
    assert abs(first["p_base"] - float(full[first["token_id"]])) < 1e-5


def test_seeded_steps_replay_in_a_new_exploration(api, exploration):
    tokens = []
    for data in (exploration, api.post("/api/v1/explorations/", exploration, "json").json()):
        branch_id = _root(data)
        for _ in range(3):
            _step(api, branch_id)
        steps = api.get(f"/api/v1/branches/{branch_id}/").json()["steps"]
        tokens.append([step["token_id"] for step in steps])
    assert tokens[0] == tokens[1]


def test_forcing_text_appends_its_tokens(api, exploration):
    response = _step(api, _root(exploration), mode="force", text=" Paris, of course")
    assert response.status_code == 201, response.content
    steps = response.json()["steps"]
    assert len(steps) > 1 and all(step["mode"] == "forced" for step in steps)
    assert "".join(step["text"] for step in steps) == " Paris, of course"


def test_a_fork_keeps_the_original_and_inherits_the_prefix(api, exploration):
    branch_id = _root(exploration)
    for _ in range(4):
        _step(api, branch_id)
    original = api.get(f"/api/v1/branches/{branch_id}/").json()["steps"]
    alternative = original[2]["distribution"]["tokens"][1]["id"]
    response = api.post(
        f"/api/v1/branches/{branch_id}/fork/", {"at_index": 2, "token_id": alternative}, "json"
    )
    assert response.status_code == 201, response.content
    child = response.json()
    assert [s["token_id"] for s in child["steps"]] == [
        original[0]["token_id"],
        original[1]["token_id"],
        alternative,
    ]
    assert child["steps"][2]["mode"] == "forced"
    again = api.get(f"/api/v1/branches/{branch_id}/").json()["steps"]
    assert [s["token_id"] for s in again] == [s["token_id"] for s in original]
    _step(api, child["id"])
    assert api.get(f"/api/v1/branches/{child['id']}/").json()["length"] == 4
    tree = api.get(f"/api/v1/explorations/{exploration['id']}/branches/").json()
    assert {branch["label"] for branch in tree} == {"main", "branch 2"}


def test_undo_removes_the_last_own_token_only(api, exploration):
    branch_id = _root(exploration)
    _step(api, branch_id)
    _step(api, branch_id)
    response = api.post(f"/api/v1/branches/{branch_id}/undo/")
    assert response.status_code == 200 and response.json()["length"] == 1
    api.post(f"/api/v1/branches/{branch_id}/undo/")
    refused = api.post(f"/api/v1/branches/{branch_id}/undo/")
    assert refused.status_code == 400
    assert "no token of its own" in refused.json()["error"]["message"]


def test_undo_refuses_to_cut_under_a_child_branch(api, exploration):
    branch_id = _root(exploration)
    for _ in range(3):
        _step(api, branch_id)
    api.post(f"/api/v1/branches/{branch_id}/fork/", {"at_index": 3, "token_id": 13}, "json")
    refused = api.post(f"/api/v1/branches/{branch_id}/undo/")
    assert refused.status_code == 400
    assert Step.objects.filter(branch_id=branch_id).count() == 3


def test_an_ended_branch_refuses_steps_until_undone(api, exploration):
    branch_id = _root(exploration)
    eos = loaded_model(SMOL).tokenizer.eos_token_id
    ended = _step(api, branch_id, mode="force", token_id=eos).json()
    assert ended["finish_reason"] == "eos"
    refused = _step(api, branch_id)
    assert refused.status_code == 400 and "has ended" in refused.json()["error"]["message"]
    api.post(f"/api/v1/branches/{branch_id}/undo/")
    assert _step(api, branch_id).status_code == 201


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"prompt": "   "}, "prompt", "empty"),
        ({"prompt": "word " * 9000}, "prompt", "reads at most"),
        ({"model": "gemma-3-270m", "use_chat_template": True}, "use_chat_template", "no chat"),
        ({"params": {"top_p": 0}}, "params.top_p", "above 0"),
        ({"stop": [""]}, "stop[0]", "blank"),
        ({"constraint": {"type": "regex", "spec": "(("}}, "constraint.spec", "Invalid regex"),
        ({"model": "nope"}, "model", "Unknown model"),
        # Text is a JSON string, never a number or a list coerced into one.
        ({"prompt": 123}, "prompt", "not a number"),
        ({"system_prompt": 4.5}, "system_prompt", "not a number"),
        ({"title": ["a"]}, "title", "not a list"),
        ({"stop": [1, 2]}, "stop[0]", "not a number"),
        ({"stop": [True]}, "stop[0]", "not true or false"),
        # Sampling numbers stay in their documented ranges, top_k a whole number.
        ({"params": {"top_k": 10**30}}, "params.top_k", "at most 1,000,000"),
        ({"params": {"top_k": 1_000_001}}, "params.top_k", "at most 1,000,000"),
        ({"params": {"top_k": 2.5}}, "params.top_k", "whole number"),
        ({"params": {"top_k": -1}}, "params.top_k", "whole number"),
        ({"params": {"temperature": True}}, "params.temperature", "valid number"),
        ({"params": {"temperature": 1e30}}, "params.temperature", "100"),
        ({"params": {"seed": 2**63}}, "params.seed", "2**63"),
    ],
)
def test_bad_explorations_are_refused_naming_the_field(api, payload, field, fragment):
    response = api.post(
        "/api/v1/explorations/", {"model": SMOL, "prompt": PROMPT, **payload}, "json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and fragment in error["message"]


@pytest.mark.parametrize(
    ("path", "payload", "field", "fragment"),
    [
        ("steps", {"mode": "force", "token_id": 10**9}, "token_id", "outside this model"),
        ("steps", {"mode": "force"}, "token_id", "token id or a text"),
        ("steps", {"mode": "jump"}, "mode", "sample, greedy or force, not 'jump'"),
        ("steps", {"mode": "force", "text": 42}, "text", "not a number"),
        ("steps", {"mode": "force", "token_id": "²"}, "token_id", "whole number"),
        ("fork", {"at_index": 5, "token_id": 3}, "at_index", "start at index 0 to 0"),
        ("fork", {"at_index": 0, "token_id": 10**9}, "token_id", "outside this model"),
    ],
)
def test_bad_steps_and_forks_are_refused_and_nothing_is_lost(
    api, exploration, path, payload, field, fragment
):
    branch_id = _root(exploration)
    response = api.post(f"/api/v1/branches/{branch_id}/{path}/", payload, "json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and fragment in error["message"]
    assert Branch.objects.filter(exploration_id=exploration["id"]).count() == 1


def test_the_largest_top_k_is_kept_as_an_integer(api):
    payload = {"model": SMOL, "prompt": PROMPT, "params": {"top_k": 1_000_000}}
    response = api.post("/api/v1/explorations/", payload, "json")
    assert response.status_code == 201, response.content
    assert response.json()["params"]["top_k"] == 1_000_000


def test_someone_else_cannot_see_or_step_an_exploration(exploration):
    stranger = APIClient()
    assert stranger.get(f"/api/v1/explorations/{exploration['id']}/").status_code == 404
    assert _step(stranger, _root(exploration)).status_code == 404
    assert stranger.get("/api/v1/explorations/").json() == []


def test_the_main_branch_cannot_be_deleted_but_others_can(api, exploration):
    branch_id = _root(exploration)
    assert api.delete(f"/api/v1/branches/{branch_id}/").status_code == 400
    child = api.post(
        f"/api/v1/branches/{branch_id}/fork/", {"at_index": 0, "token_id": 13}, "json"
    ).json()
    renamed = api.patch(f"/api/v1/branches/{child['id']}/", {"label": "what if"}, "json")
    assert renamed.json()["label"] == "what if"
    assert api.delete(f"/api/v1/branches/{child['id']}/").status_code == 204
    assert not Branch.objects.filter(pk=child["id"]).exists()


def test_logits_of_a_branch_step_match_a_full_forward(api, exploration):
    """The worker's cached stepping gives what a full forward pass over the sequence gives."""
    branch_id = _root(exploration)
    for _ in range(5):
        _step(api, branch_id)
    steps = api.get(f"/api/v1/branches/{branch_id}/").json()["steps"]
    loaded = loaded_model(SMOL)
    context = prompt_ids(loaded, PROMPT, None, False) + [s["token_id"] for s in steps[:4]]
    full = next_token_logits(loaded, context).softmax(-1)
    assert torch.isclose(torch.tensor(steps[4]["p_base"]), full[steps[4]["token_id"]], atol=1e-5)


def test_generating_to_the_end_saves_every_step_and_clears_the_flag(
    api, django_capture_on_commit_callbacks
):
    from inspector.explorations import services as explorations

    created = api.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": PROMPT, "max_new_tokens": 5, "params": {"seed": 2}},
        "json",
    ).json()
    branch = Branch.objects.get(pk=_root(created))
    with django_capture_on_commit_callbacks(execute=True):
        explorations.start_generation(branch)
    branch.refresh_from_db()
    assert branch.finish_reason == "max_tokens"
    assert branch.steps.count() == 5
    assert not explorations.is_generating(branch)
    with pytest.raises(explorations.ServiceError, match="has ended"):
        explorations.start_generation(branch)
