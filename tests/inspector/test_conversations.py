"""Conversations through the REST API (tasks run inline, real SmolLM2): a user's turn after the
reply ends, what the model then reads, undo, branching inside an earlier turn, refusals."""

from __future__ import annotations

import json

import pytest
import torch

from engine.distribution import prompt_ids
from inspector.models import Branch
from worker.loaded import loaded_model

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"


def _chat(api, **extra) -> dict:
    payload = {
        "model": SMOL,
        "prompt": "Say hello.",
        "use_chat_template": True,
        "max_new_tokens": 4,
        "params": {"temperature": 0},
        **extra,
    }
    response = api.post("/api/v1/explorations/", payload, "json")
    assert response.status_code == 201, response.content
    return response.json()


def _step_to_end(api, branch_id) -> dict:
    for _ in range(50):
        response = api.post(f"/api/v1/branches/{branch_id}/steps/", {"mode": "greedy"}, "json")
        assert response.status_code == 201, response.content
        if response.json()["finish_reason"]:
            return response.json()
    raise AssertionError("the reply never ended")


def _turn(api, branch_id, text):
    return api.post(f"/api/v1/branches/{branch_id}/turns/", {"text": text}, "json")


def _branch(api, branch_id) -> dict:
    return api.get(f"/api/v1/branches/{branch_id}/").json()


@pytest.fixture
def ended(api) -> str:
    """A chat exploration's main branch whose first reply ended (max new tokens: 4)."""
    branch_id = _chat(api)["branches"][0]["id"]
    assert _step_to_end(api, branch_id)["finish_reason"] == "max_tokens"
    return branch_id


def test_a_turn_appends_what_the_chat_template_reads(api, ended):
    before = _branch(api, ended)
    response = _turn(api, ended, "And in French?")
    assert response.status_code == 201, response.content
    added = response.json()
    assert [step["mode"] for step in added["steps"]] == ["turn"] * len(added["steps"])
    assert added["steps"][0]["turn"] == {"text": "And in French?", "reply_ended": "max_tokens"}
    tokenizer = loaded_model(SMOL).tokenizer
    turn_text = tokenizer.decode([step["token_id"] for step in added["steps"]])
    assert turn_text == (
        "<|im_end|>\n<|im_start|>user\nAnd in French?<|im_end|>\n<|im_start|>assistant\n"
    )
    # Each token of the turn is recorded with the model's probability of it.
    assert all(0 < step["p_base"] <= 1 for step in added["steps"])
    branch = _branch(api, ended)
    assert branch["finish_reason"] == ""
    reply = before["steps"]
    assert [turn["role"] for turn in branch["turns"]] == ["user", "assistant", "user"]
    assert branch["turns"][0] == {
        "role": "user",
        "text": "Say hello.",
        "first_index": None,
        "last_index": None,
    }
    assert branch["turns"][1]["first_index"] == 0
    assert branch["turns"][1]["last_index"] == len(reply) - 1
    assert branch["turns"][1]["text"] == "".join(step["text"] for step in reply)
    assert branch["turns"][2] == {
        "role": "user",
        "text": "And in French?",
        "first_index": len(reply),
        "last_index": len(reply) + len(added["steps"]) - 1,
    }
    assert added["turns"] == branch["turns"]


def test_the_next_reply_reads_the_whole_conversation(api, ended):
    assert _turn(api, ended, "Thank you!").status_code == 201
    # The reply's own max new tokens count from its start: it may write 4 tokens again.
    finished = _step_to_end(api, ended)
    branch = _branch(api, ended)
    assert finished["finish_reason"] == "max_tokens"
    assert branch["turns"][-1]["role"] == "assistant"
    assert branch["turns"][-1]["last_index"] - branch["turns"][-1]["first_index"] == 3
    ids = [step["token_id"] for step in branch["steps"]]
    prompt = prompt_ids(loaded_model(SMOL), "Say hello.", None, True)
    # What the tokenize endpoint reads for the conversation is what the model read.
    read = api.post(
        "/api/v1/tokenize/",
        {
            "model": SMOL,
            "text": "Say hello.",
            "use_chat_template": True,
            "completion_ids": ids,
        },
        "json",
    )
    assert read.status_code == 200, read.content
    assert [token["id"] for token in read.json()["tokens"]] == list(prompt) + ids
    # The greedy reply after the turn is the model's argmax over that whole sequence.
    model = loaded_model(SMOL).model
    first_reply = branch["turns"][-1]["first_index"]
    context = torch.tensor([list(prompt) + ids[:first_reply]])
    with torch.no_grad():
        expected = int(model(context).logits[0, -1].argmax())
    assert ids[first_reply] == expected


def test_undo_takes_the_whole_turn_back(api, ended):
    length = _branch(api, ended)["length"]
    assert _turn(api, ended, "More please").status_code == 201
    undone = api.post(f"/api/v1/branches/{ended}/undo/", {}, "json")
    assert undone.status_code == 200, undone.content
    branch = undone.json()
    assert branch["length"] == length
    assert branch["finish_reason"] == "max_tokens"  # the reply is ended again, as it was
    assert [turn["role"] for turn in branch["turns"]] == ["user", "assistant"]


def test_a_branch_inside_an_earlier_reply_keeps_later_turns_on_the_old_branch(api, ended):
    assert _turn(api, ended, "Go on").status_code == 201
    _step_to_end(api, ended)
    original = _branch(api, ended)
    forked = api.post(f"/api/v1/branches/{ended}/fork/", {"at_index": 1, "token_id": 28}, "json")
    assert forked.status_code == 201, forked.content
    child = forked.json()
    assert [turn["role"] for turn in child["turns"]] == ["user", "assistant"]
    assert child["turns"][1]["last_index"] == 1
    assert _branch(api, ended)["turns"] == original["turns"]
    turn = original["turns"][2]
    inside = api.post(
        f"/api/v1/branches/{ended}/fork/",
        {"at_index": turn["first_index"] + 1, "token_id": 28},
        "json",
    )
    assert inside.status_code == 400
    assert "user's turn" in inside.json()["error"]["message"]


@pytest.mark.parametrize(
    "setup, expected",
    [
        ("open", "has not ended yet"),
        ("plain", "plain text"),
        ("empty", "empty"),
    ],
)
def test_a_turn_is_refused_with_the_reason(api, setup, expected):
    if setup == "plain":
        branch_id = _chat(api, use_chat_template=False, prompt="Hello")["branches"][0]["id"]
        _step_to_end(api, branch_id)
    else:
        branch_id = _chat(api)["branches"][0]["id"]
        api.post(f"/api/v1/branches/{branch_id}/steps/", {"mode": "greedy"}, "json")
        if setup == "empty":
            _step_to_end(api, branch_id)
    before = _branch(api, branch_id)
    response = _turn(api, branch_id, "   " if setup == "empty" else "Hi again")
    assert response.status_code == 400, response.content
    assert expected in response.json()["error"]["message"]
    assert _branch(api, branch_id) == before  # nothing saved


def test_plain_branches_list_no_turns(api):
    branch_id = _chat(api, use_chat_template=False, prompt="Hello")["branches"][0]["id"]
    assert _branch(api, branch_id)["turns"] == []


def test_export_carries_the_turns_and_import_gives_the_same_conversation(api, ended):
    assert _turn(api, ended, "Once more, in French").status_code == 201
    _step_to_end(api, ended)
    exploration_id = Branch.objects.get(pk=ended).exploration_id
    exported = api.get(f"/api/v1/explorations/{exploration_id}/export/").json()
    assert exported["version"] == 2
    steps = exported["branches"][0]["steps"]
    opening = [step for step in steps if step["turn"]]
    assert len(opening) == 1 and opening[0]["turn"]["text"] == "Once more, in French"
    imported = api.post("/api/v1/explorations/import/", exported, "json")
    assert imported.status_code == 201, imported.content
    copy = _branch(
        api, api.get(f"/api/v1/explorations/{imported.json()['id']}/").json()["branches"][0]["id"]
    )
    assert copy["turns"] == _branch(api, ended)["turns"]


def test_a_version_1_file_is_still_read(api, valid_file):
    old = json.loads(json.dumps(valid_file))
    old["version"] = 1
    for branch in old["branches"]:
        for step in branch["steps"]:
            del step["turn"]
    response = api.post("/api/v1/explorations/import/", old, "json")
    assert response.status_code == 201, response.content


def test_a_version_1_file_cannot_hold_turns(api, valid_file):
    old = json.loads(json.dumps(valid_file))
    old["version"] = 1
    old["branches"][0]["steps"][0]["mode"] = "turn"
    response = api.post("/api/v1/explorations/import/", old, "json")
    assert response.status_code == 400
    assert "version 1 files cannot have" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "turn, fragment",
    [
        ({"reply_ended": "eos"}, "holds the text"),
        ({"text": "Hi", "reply_ended": "eos"}, "Only a step of mode turn"),
        ({"text": "Hi", "reply_ended": "x" * 40}, "how the reply before it ended"),
    ],
)
def test_a_file_with_a_bad_turn_is_refused(api, valid_file, turn, fragment):
    bad = json.loads(json.dumps(valid_file))
    bad["branches"][0]["steps"][0]["turn"] = turn
    response = api.post("/api/v1/explorations/import/", bad, "json")
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_stepping_an_ended_reply_says_a_turn_goes_on(api, ended):
    refused = api.post(f"/api/v1/branches/{ended}/steps/", {"mode": "greedy"}, "json")
    assert refused.status_code == 400
    assert "add your turn to go on" in refused.json()["error"]["message"]


def test_a_turn_token_offers_no_branch_on_the_page(api, ended):
    steps = _turn(api, ended, "Why?").json()["steps"]
    page = api.get(f"/branches/{ended}/steps/{steps[1]['index']}/", HTTP_HX_REQUEST="true")
    html = page.content.decode()
    assert 'data-testid="turn-token"' in html and 'data-action="fork"' not in html


def test_a_file_whose_turn_has_no_opening_is_refused(api, valid_file):
    bad = json.loads(json.dumps(valid_file))
    bad["branches"][0]["steps"][0]["mode"] = "turn"
    response = api.post("/api/v1/explorations/import/", bad, "json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "branches[0].steps[0].turn"
    assert "first token, and only there" in error["message"]


def test_a_file_with_a_branch_inside_a_turn_is_refused(api, ended):
    assert _turn(api, ended, "Go on").status_code == 201
    _step_to_end(api, ended)
    exploration_id = Branch.objects.get(pk=ended).exploration_id
    exported = api.get(f"/api/v1/explorations/{exploration_id}/export/").json()
    steps = exported["branches"][0]["steps"]
    inside = next(step["index"] for step in steps if step["mode"] == "turn") + 1
    child = {
        "id": "inside",
        "parent": exported["branches"][0]["id"],
        "fork_index": inside,
        "label": "inside",
        "finish_reason": "",
        "steps": [{**steps[inside], "mode": "forced", "turn": None}],
    }
    exported["branches"].append(child)
    response = api.post("/api/v1/explorations/import/", exported, "json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "branches[1].fork_index"
