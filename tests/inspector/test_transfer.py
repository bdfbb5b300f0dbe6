"""Export, import and copy of explorations, and steps as CSV (tasks run inline, real SmolLM2)."""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from inspector.models import AuditEvent, Exploration, Step
from inspector.transfer import services as transfer
from tests.conftest import client_for
from tests.inspector.makers import (
    IMPORT,
    PROMPT,
    SMOL,
    branch_lines,
    file_lines,
    request_as,
    upload,
    without_ids,
)

pytestmark = pytest.mark.django_db


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
    assert json.dumps(without_ids(second), sort_keys=True) == json.dumps(
        without_ids(first.json()), sort_keys=True
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
    imported = transfer.import_exploration(transfer.export_exploration(recorded), request_as())
    assert branch_lines(imported) == branch_lines(recorded)
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
    assert branch_lines(Exploration.objects.get(pk=response.json()["id"])) == file_lines(exported)


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
    assert without_ids(page) == without_ids(transfer.export_exploration(recorded))


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


def test_the_import_page_makes_the_exploration_and_opens_it(exported, student):
    browser = client_for(student)
    response = browser.post("/explore/import/", {"file": upload(exported)}, format="multipart")
    imported = Exploration.objects.get(owner=student)
    assert response.status_code == 302 and response["Location"] == f"/explore/{imported.pk}/"
    assert branch_lines(imported) == file_lines(exported)


def test_the_import_page_redirects_htmx_on_the_client(exported, api):
    response = api.post(
        "/explore/import/", {"file": upload(exported)}, format="multipart", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/explore/")


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
    fork = transfer.copy_exploration(recorded, request_as(student))
    assert fork.owner == student and fork.forked_from == recorded
    assert fork.title == f"Fork of {PROMPT}"
    assert branch_lines(fork) == branch_lines(recorded)
    assert AuditEvent.objects.get(action="exploration.fork").target_id == str(fork.pk)
    again = transfer.copy_exploration(fork, request_as(student))
    assert again.title == f"Fork of {PROMPT}"


def test_copy_for_a_visitor_belongs_to_their_session(recorded):
    request = request_as()
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
