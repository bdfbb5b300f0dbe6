"""Import refusals: a bad exploration file is refused whole, naming where, and saves nothing
(through the API and the import page; real SmolLM2 recordings)."""

import pytest

from inspector.models import Step
from inspector.transfer import services as transfer
from tests.inspector.makers import IMPORT, SMOL, SMOL_VOCABULARY, request_as, row_counts, upload

pytestmark = pytest.mark.django_db


# --- Refusals ---------------------------------------------------------------------------------


def _set(path: str, value):
    """An edit of the file: put `value` at a path like "branches.0.steps.1.index"."""

    def edit(data):
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
        return data

    return edit


def _delete(path: str):
    def edit(data):
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        del target[last]
        return data

    return edit


def _second_id_twice(data):
    data["branches"][1]["id"] = data["branches"][0]["id"]
    return data


def _main_has_a_parent(data):
    data["branches"][0]["parent"] = data["branches"][1]["id"]
    return data


def _child_first(data):
    data["branches"].reverse()
    return data


REFUSALS = [
    ("list", {}, lambda data: [data], "non_field_errors", "is a JSON object, not a list"),
    ("format", {}, _set("format", "other"), "format", "not a TokenLens exploration file"),
    (
        "version",
        {},
        _set("version", 7),
        "version",
        "This file is version 7; this TokenLens reads versions 1 and 2",
    ),
    ("no version", {}, _delete("version"), "version", "does not say its version"),
    (
        "model",
        {},
        _set("exploration.model", "gpt-9"),
        "exploration.model",
        f"Unknown model 'gpt-9'; choose one of: {SMOL}",
    ),
    ("no branches", {}, _set("branches", []), "branches", "no list of branches"),
    ("missing id", {}, _delete("branches.1.id"), "branches[1].id", "required"),
    ("duplicate id", {}, _second_id_twice, "branches[1].id", "already has the id"),
    ("no root", {}, _main_has_a_parent, "branches", "No branch is the main branch"),
    ("two roots", {}, _set("branches.1.parent", None), "branches[1].parent", "Only one branch"),
    ("unknown parent", {}, _set("branches.1.parent", "x"), "branches[1].parent", "not the id"),
    ("child first", {}, _child_first, "branches[0].parent", "comes after this branch"),
    (
        "fork too far",
        {},
        _set("branches.1.fork_index", 3),
        "branches[1].fork_index",
        "has 2 tokens",
    ),
    ("root fork", {}, _set("branches.0.fork_index", 1), "branches[0].fork_index", "starts at"),
    (
        "index gap",
        {},
        _set("branches.0.steps.1.index", 2),
        "branches[0].steps[1].index",
        "Expected index 1, got 2",
    ),
    (
        "token id",
        {},
        _set("branches.0.steps.1.token_id", 2**31),
        "branches[0].steps[1].token_id",
        "between 0 and",
    ),
    (
        "negative token id",
        {},
        _set("branches.0.steps.0.token_id", -1),
        "branches[0].steps[0].token_id",
        "between 0 and",
    ),
    ("mode", {}, _set("branches.0.steps.0.mode", "magic"), "branches[0].steps[0].mode", "magic"),
    (
        "p_final",
        {},
        _set("branches.0.steps.0.p_final", 1.5),
        "branches[0].steps[0].p_final",
        "between 0 and 1",
    ),
    (
        "p_base",
        {},
        _set("branches.1.steps.0.p_base", -0.1),
        "branches[1].steps[0].p_base",
        "between 0 and 1",
    ),
    (
        "candidate",
        {},
        _set("branches.0.steps.0.distribution.tokens.3.p_base", 2),
        "branches[0].steps[0].distribution",
        "between 0 and 1",
    ),
    (
        "too many steps",
        {"TOKENLENS_MAX_STEPS_PER_BRANCH": 1},
        lambda data: data,
        "branches[0].steps",
        "at most 1",
    ),
    (
        "too long with inherited",
        {"TOKENLENS_MAX_STEPS_PER_BRANCH": 2},
        _set("exploration.max_new_tokens", 2),
        "branches[1].steps",
        "This branch has 3 tokens",
    ),
    (
        "too many branches",
        {"TOKENLENS_MAX_BRANCHES": 1},
        lambda data: data,
        "branches",
        "at most 1",
    ),
    (
        "token outside the vocabulary",
        {},
        _set("branches.0.steps.1.token_id", SMOL_VOCABULARY),
        "branches[0].steps[1].token_id",
        f"not in the vocabulary of {SMOL} (ids 0 to {SMOL_VOCABULARY - 1})",
    ),
    (
        "text a number",
        {},
        _set("branches.0.steps.0.text", 5),
        "branches[0].steps[0].text",
        "not a number",
    ),
    ("label a number", {}, _set("branches.1.label", 3), "branches[1].label", "not a number"),
    ("prompt a number", {}, _set("exploration.prompt", 7), "exploration.prompt", "not a number"),
    ("stop numbers", {}, _set("exploration.stop", [1, 2]), "exploration.stop[0]", "not a number"),
    (
        "huge top_k",
        {},
        _set("exploration.params", {"top_k": 10**30}),
        "exploration.params.top_k",
        "at most 1,000,000",
    ),
    (
        "probability true",
        {},
        _set("branches.0.steps.0.p_base", True),
        "branches[0].steps[0].p_base",
        "valid number",
    ),
    (
        "prompt",
        {"TOKENLENS_MAX_PROMPT_CHARS": 10},
        lambda data: data,
        "exploration.prompt",
        "too long",
    ),
]


@pytest.mark.parametrize(
    ("limits", "edit", "field", "fragment"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_a_bad_file_is_refused_naming_where_and_saves_nothing(
    api, settings, valid_file, limits, edit, field, fragment
):
    for name, value in limits.items():
        setattr(settings, name, value)
    before = row_counts()
    response = api.post(IMPORT, edit(valid_file), "json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert fragment in response.json()["error"]["message"]
    assert row_counts() == before


def test_a_failure_while_writing_leaves_nothing(api, valid_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Step.objects, "bulk_create", broken)
    before = row_counts()
    with pytest.raises(RuntimeError):
        transfer.import_exploration(valid_file, request_as())
    assert row_counts() == before


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{", "The file is not valid JSON"),
        ({"format": transfer.FORMAT, "version": 7}, "This file is version 7"),
    ],
)
def test_the_import_page_shows_why_a_file_is_refused(api, db, content, fragment):
    before = row_counts()
    plain = api.post("/explore/import/", {"file": upload(content)}, format="multipart")
    assert plain.status_code == 400
    assert fragment in plain.content.decode() and "New exploration" in plain.content.decode()
    fragment_only = api.post(
        "/explore/import/", {"file": upload(content)}, format="multipart", HTTP_HX_REQUEST="true"
    )
    assert fragment_only.status_code == 422
    html = fragment_only.content.decode()
    assert fragment in html and 'id="import-form"' in html and "New exploration" not in html
    assert row_counts() == before


def test_a_refusal_deep_in_the_file_says_where(api, valid_file):
    valid_file["branches"][1]["steps"][0]["mode"] = "magic"
    response = api.post("/explore/import/", {"file": upload(valid_file)}, format="multipart")
    assert "(at branches[1].steps[0].mode)" in response.content.decode()
