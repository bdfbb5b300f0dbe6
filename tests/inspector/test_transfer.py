"""Export, import and copy of explorations, and steps as CSV (tasks run inline, real SmolLM2)."""

import copy
import csv
import io
import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from rest_framework.test import APIClient

from inspector.models import AuditEvent, Branch, Exploration, Step
from inspector.transfer import services as transfer
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"
IMPORT = "/api/v1/explorations/import/"
SMOL_VOCABULARY = 49152  # SmolLM2's config.vocab_size

_made_once: dict[str, dict] = {}


def _step(api, branch_id, **payload):
    response = api.post(f"/api/v1/branches/{branch_id}/steps/", payload, "json")
    assert response.status_code == 201, response.content
    return response.json()["steps"]


def _fork(api, branch_id, at_index, token_id):
    response = api.post(
        f"/api/v1/branches/{branch_id}/fork/", {"at_index": at_index, "token_id": token_id}, "json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _record(api) -> Exploration:
    """main: greedy, sampled, sampled, greedy; "branch 2" forks main at 1 with its second
    choice, then samples; "branch 3" forks branch 2 at 2."""
    created = api.post(
        "/api/v1/explorations/",
        {"model": SMOL, "prompt": PROMPT, "params": {"temperature": 0.8, "seed": 3}},
        "json",
    ).json()
    main = created["branches"][0]["id"]
    steps = [
        *_step(api, main, mode="greedy"),
        *_step(api, main),
        *_step(api, main),
        *_step(api, main, mode="greedy"),
    ]
    child = _fork(api, main, 1, steps[1]["distribution"]["tokens"][1]["id"])
    _step(api, child)
    _fork(api, child, 2, 13)
    return Exploration.objects.get(pk=created["id"])


@pytest.fixture
def recorded(api) -> Exploration:
    return _record(api)


def _once(name: str, make) -> dict:
    """A real export made once for the module (stepping takes seconds); tests get a copy."""
    if name not in _made_once:
        exploration = make(APIClient())
        _made_once[name] = transfer.export_exploration(exploration)
        exploration.delete()
    return copy.deepcopy(_made_once[name])


@pytest.fixture
def exported(db) -> dict:
    """The export of a recording like `recorded`'s."""
    return _once("recorded", _record)


@pytest.fixture
def valid_file(db) -> dict:
    """A small real export: main has 2 steps, "branch 2" starts at its end with one forced
    token. Each refusal edits it."""

    def make(api):
        created = api.post("/api/v1/explorations/", {"model": SMOL, "prompt": PROMPT}, "json")
        main = created.json()["branches"][0]["id"]
        _step(api, main, mode="greedy")
        _step(api, main)
        _fork(api, main, 2, 13)
        return Exploration.objects.get(pk=created.json()["id"])

    return _once("small", make)


def _without_ids(data: dict) -> dict:
    """The export with branch ids replaced by positions and no exported_at (what must match)."""
    data = copy.deepcopy(data)
    data.pop("exported_at")
    positions = {branch["id"]: position for position, branch in enumerate(data["branches"])}
    for branch in data["branches"]:
        branch["id"] = positions[branch["id"]]
        branch["parent"] = positions.get(branch["parent"])
    return data


def _lines(exploration: Exploration) -> list[list[int]]:
    return [branch.token_ids() for branch in exploration.branches.order_by("created_at")]


def _file_lines(data: dict) -> list[list[int]]:
    """Every branch's whole token ids, read from an export file."""
    lines: dict[str, list[int]] = {}
    for branch in data["branches"]:
        inherited = lines[branch["parent"]][: branch["fork_index"]] if branch["parent"] else []
        lines[branch["id"]] = inherited + [step["token_id"] for step in branch["steps"]]
    return list(lines.values())


def _counts() -> tuple[int, int, int]:
    return Exploration.objects.count(), Branch.objects.count(), Step.objects.count()


def _request(user=None):
    """A request as the views see it: a user (or a visitor) with a browser session."""
    request = RequestFactory().post("/")
    request.user = user or AnonymousUser()
    request.session = SessionStore()
    return request


# --- Export and import round trip -------------------------------------------------------------


def test_export_import_export_gives_the_same_file(api, recorded):
    first = api.get(f"/api/v1/explorations/{recorded.pk}/export/")
    assert first.status_code == 200
    assert first["Content-Disposition"] == 'attachment; filename="the-capital-of-france-is.json"'
    imported = api.post(IMPORT, first.json(), "json")
    assert imported.status_code == 201, imported.content
    assert imported.json()["url"].endswith(f"/explore/{imported.json()['id']}/")
    second = api.get(f"/api/v1/explorations/{imported.json()['id']}/export/").json()
    # The one difference: the copy says it came from a file.
    assert first.json()["exploration"]["imported"] is False
    assert second["exploration"].pop("imported") is True
    second["exploration"]["imported"] = False
    # Serialized text equal: every number (and its int/float type) came back exactly.
    assert json.dumps(_without_ids(second), sort_keys=True) == json.dumps(
        _without_ids(first.json()), sort_keys=True
    )
    assert {branch["id"] for branch in second["branches"]}.isdisjoint(
        branch["id"] for branch in first.json()["branches"]
    )


def test_an_export_holds_own_steps_with_parents_first(exported):
    branches = exported["branches"]
    assert [branch["label"] for branch in branches] == ["main", "branch 2", "branch 3"]
    assert [branch["parent"] for branch in branches] == [None, branches[0]["id"], branches[1]["id"]]
    assert [[step["index"] for step in branch["steps"]] for branch in branches] == [
        [0, 1, 2, 3],
        [1, 2],
        [2],
    ]
    assert [step["mode"] for step in branches[0]["steps"]] == [
        "greedy",
        "sampled",
        "sampled",
        "greedy",
    ]
    assert exported["exploration"]["model"] == SMOL
    assert exported["exploration"]["params"] == {"temperature": 0.8, "seed": 3}


def test_an_imported_exploration_has_the_same_tokens_and_recorded_numbers(api, recorded):
    imported = transfer.import_exploration(transfer.export_exploration(recorded), _request())
    assert _lines(imported) == _lines(recorded)
    original = Step.objects.filter(branch__exploration=recorded).order_by("branch__created_at")
    copies = Step.objects.filter(branch__exploration=imported).order_by("branch__created_at")
    fields = [*transfer.STEP_FIELDS]
    assert list(copies.order_by("branch__created_at", "index").values_list(*fields)) == list(
        original.order_by("branch__created_at", "index").values_list(*fields)
    )
    assert imported.branches.get(label="branch 3").parent.label == "branch 2"
    assert imported.forked_from is None


def test_import_through_a_multipart_file(api, exported):
    upload = SimpleUploadedFile("mine.json", json.dumps(exported).encode(), "application/json")
    response = api.post(IMPORT, {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert _lines(Exploration.objects.get(pk=response.json()["id"])) == _file_lines(exported)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"{not json", "not valid JSON"), (b"\xff\xfe\x00", "not valid JSON"), (b"NaN", "NaN")],
)
def test_a_file_that_is_not_json_is_refused_on_the_file_field(api, db, content, fragment):
    upload = SimpleUploadedFile("bad.json", content, "application/json")
    response = api.post(IMPORT, {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "file"
    assert fragment in response.json()["error"]["message"]


def test_a_multipart_import_without_a_file_says_so(api, db):
    response = api.post(IMPORT, {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "field": "file",
        "message": "Send the file in the multipart field 'file'",
    }


def test_import_by_a_signed_in_user_is_theirs(exported, student):
    response = client_for(student).post(IMPORT, exported, "json")
    assert response.status_code == 201
    imported = Exploration.objects.get(pk=response.json()["id"])
    assert imported.owner == student and imported.session_key == ""
    event = AuditEvent.objects.get(action="exploration.import")
    assert event.actor == student and event.target_id == str(imported.pk)
    assert event.detail == {"branches": 3, "steps": 7}


def test_import_by_a_visitor_belongs_to_their_browser_session(exported):
    visitor = APIClient()
    response = visitor.post(IMPORT, exported, "json")
    imported = Exploration.objects.get(pk=response.json()["id"])
    assert imported.owner is None and imported.session_key
    assert visitor.get(f"/api/v1/explorations/{imported.pk}/").status_code == 200
    assert APIClient().get(f"/api/v1/explorations/{imported.pk}/").status_code == 404


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
        "This file is version 7; this TokenLens reads version 1",
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
    before = _counts()
    response = api.post(IMPORT, edit(valid_file), "json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert fragment in response.json()["error"]["message"]
    assert _counts() == before


def test_a_failure_while_writing_leaves_nothing(api, valid_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Step.objects, "bulk_create", broken)
    before = _counts()
    with pytest.raises(RuntimeError):
        transfer.import_exploration(valid_file, _request())
    assert _counts() == before


# --- Downloads --------------------------------------------------------------------------------


def test_strangers_get_404_for_the_downloads(recorded, other_student):
    stranger = client_for(other_student)
    branch = recorded.root
    for url in (
        f"/api/v1/explorations/{recorded.pk}/export/",
        f"/api/v1/branches/{branch.pk}/steps.csv",
        f"/explore/{recorded.pk}/export.json",
        f"/branches/{branch.pk}/steps.csv",
    ):
        assert stranger.get(url).status_code == 404, url


def test_the_export_page_downloads_the_same_file(api, recorded):
    response = api.get(f"/explore/{recorded.pk}/export.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    page = json.loads(response.content)
    assert _without_ids(page) == _without_ids(transfer.export_exploration(recorded))


def _csv_rows(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_steps_csv_has_one_row_per_token_inherited_included(api, recorded):
    branch = recorded.branches.get(label="branch 3")
    rows = _csv_rows(api.get(f"/api/v1/branches/{branch.pk}/steps.csv"))
    assert list(rows[0]) == list(transfer.CSV_COLUMNS)
    assert [int(row["token_id"]) for row in rows] == branch.token_ids()
    assert [row["branch"] for row in rows] == ["main", "branch 2", "branch 3"]
    assert [row["index"] for row in rows] == ["0", "1", "2"]
    first = Step.objects.get(branch=recorded.root, index=0)
    assert float(rows[0]["p_base"]) == first.p_base
    assert float(rows[0]["entropy"]) == first.distribution["entropy"]
    assert rows[0]["mode"] == "greedy" and rows[2]["mode"] == "forced"


def test_the_steps_csv_keeps_odd_text_and_defuses_formulas(api, recorded):
    steps = list(Step.objects.filter(branch=recorded.root).order_by("index"))
    texts = ['=HYPERLINK("http://x","y")', ' a, "quoted"\nline', "-1", "@cmd"]
    for step, text in zip(steps, texts, strict=True):
        step.text = text
        step.save()
    rows = _csv_rows(api.get(f"/branches/{recorded.root.pk}/steps.csv"))
    assert [row["text"] for row in rows] == [
        "'" + texts[0],
        texts[1],
        "'" + texts[2],
        "'" + texts[3],
    ]


def test_the_csv_answers_a_client_that_asks_for_csv(api, recorded):
    url = f"/api/v1/branches/{recorded.root.pk}/steps.csv"
    response = api.get(url, HTTP_ACCEPT="text/csv")
    assert len(_csv_rows(response)) == 4


# --- The import page --------------------------------------------------------------------------


def _upload(data) -> SimpleUploadedFile:
    content = data if isinstance(data, bytes) else json.dumps(data).encode()
    return SimpleUploadedFile("exploration.json", content, "application/json")


def test_the_import_page_makes_the_exploration_and_opens_it(exported, student):
    browser = client_for(student)
    response = browser.post("/explore/import/", {"file": _upload(exported)}, format="multipart")
    imported = Exploration.objects.get(owner=student)
    assert response.status_code == 302 and response["Location"] == f"/explore/{imported.pk}/"
    assert _lines(imported) == _file_lines(exported)


def test_the_import_page_redirects_htmx_on_the_client(exported, api):
    response = api.post(
        "/explore/import/", {"file": _upload(exported)}, format="multipart", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/explore/")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{", "The file is not valid JSON"),
        ({"format": transfer.FORMAT, "version": 7}, "This file is version 7"),
    ],
)
def test_the_import_page_shows_why_a_file_is_refused(api, db, content, fragment):
    before = _counts()
    plain = api.post("/explore/import/", {"file": _upload(content)}, format="multipart")
    assert plain.status_code == 400
    assert fragment in plain.content.decode() and "New exploration" in plain.content.decode()
    fragment_only = api.post(
        "/explore/import/", {"file": _upload(content)}, format="multipart", HTTP_HX_REQUEST="true"
    )
    assert fragment_only.status_code == 422
    html = fragment_only.content.decode()
    assert fragment in html and 'id="import-form"' in html and "New exploration" not in html
    assert _counts() == before


def test_a_refusal_deep_in_the_file_says_where(api, valid_file):
    valid_file["branches"][1]["steps"][0]["mode"] = "magic"
    response = api.post("/explore/import/", {"file": _upload(valid_file)}, format="multipart")
    assert "(at branches[1].steps[0].mode)" in response.content.decode()


def test_the_list_page_offers_the_import_form(api, db):
    html = api.get("/explore/").content.decode()
    assert "Import an exploration" in html
    assert 'hx-encoding="multipart/form-data"' in html and 'name="file"' in html


def test_the_exploration_page_links_the_downloads(api, recorded):
    html = api.get(f"/explore/{recorded.pk}/").content.decode()
    assert f'href="/explore/{recorded.pk}/export.json" download' in html
    assert f'href="/branches/{recorded.root.pk}/steps.csv" download' in html


# --- Copy (forking from a lesson or a share link) ---------------------------------------------


def test_copy_makes_the_requesters_own_fork_with_the_same_tokens(recorded, student):
    fork = transfer.copy_exploration(recorded, _request(student))
    assert fork.owner == student and fork.forked_from == recorded
    assert fork.title == f"Fork of {PROMPT}"
    assert _lines(fork) == _lines(recorded)
    assert AuditEvent.objects.get(action="exploration.fork").target_id == str(fork.pk)
    again = transfer.copy_exploration(fork, _request(student))
    assert again.title == f"Fork of {PROMPT}"


def test_copy_for_a_visitor_belongs_to_their_session(recorded):
    request = _request()
    fork = transfer.copy_exploration(recorded, request)
    assert fork.owner is None and fork.session_key
    assert Exploration.objects.filter(pk=fork.pk, session_key=request.session.session_key)


# --- Schema -----------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_transfer_endpoints(api, db):
    schema = api.get("/api/schema/?format=json").json()
    imported = schema["paths"]["/api/v1/explorations/import/"]["post"]
    assert set(imported["requestBody"]["content"]) >= {"application/json", "multipart/form-data"}
    assert "201" in imported["responses"]
    export = schema["paths"]["/api/v1/explorations/{exploration_id}/export/"]["get"]
    assert "ExplorationFile" in json.dumps(export["responses"]["200"])
    assert (
        "text/csv"
        in schema["paths"]["/api/v1/branches/{branch_id}/steps.csv"]["get"]["responses"]["200"][
            "content"
        ]
    )
