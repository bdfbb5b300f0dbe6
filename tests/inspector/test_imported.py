"""An exploration made from an imported file says so wherever it is read (its page, a share
link's reader, the compare page, lists, the API and its own export), and a fork of it still
does: its distributions were not recorded by this server's model. No model runs here."""

from __future__ import annotations

import copy

import pytest

from inspector.models import Branch, Exploration, ShareLink, Step
from inspector.transfer import services as transfer
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SMOL = "smollm2-135m-instruct"
NOTICE = "Its distributions were not recorded by this server's"
CANDIDATE = {"id": 7042, "text": " Paris", "p_base": 0.99, "p_final": 0.99, "kept": True}
FILE = {
    "format": transfer.FORMAT,
    "version": transfer.VERSION,
    "exploration": {
        "title": "Fabricated capitals",
        "model": SMOL,
        "prompt": "The capital of France is",
        "system_prompt": "",
        "use_chat_template": False,
        "params": {"seed": 1},
        "max_new_tokens": 16,
        "stop": [],
        "constraint": None,
    },
    "branches": [
        {
            "id": "main",
            "parent": None,
            "fork_index": 0,
            "label": "main",
            "finish_reason": "",
            "steps": [
                {
                    "index": 0,
                    "token_id": 7042,
                    "text": " Paris",
                    "mode": "sampled",
                    "p_base": 0.99,
                    "p_final": 0.99,
                    "rank": 0,
                    "distribution": {"tokens": [CANDIDATE], "chosen": CANDIDATE, "n_kept": 1},
                }
            ],
        },
        {"id": "b", "parent": "main", "fork_index": 1, "label": "b", "steps": []},
    ],
}


@pytest.fixture
def owner(student):
    return client_for(student)


@pytest.fixture
def imported(owner) -> Exploration:
    response = owner.post("/api/v1/explorations/import/", copy.deepcopy(FILE), "json")
    assert response.status_code == 201, response.content
    exploration = Exploration.objects.get(pk=response.json()["id"])
    assert exploration.imported
    return exploration


@pytest.fixture
def recorded(student) -> Exploration:
    """One made here (the model's own steps), for contrast."""
    exploration = Exploration.objects.create(owner=student, model_key=SMOL, prompt="Hello")
    branch = Branch.objects.create(exploration=exploration, label="main")
    Step.objects.create(
        branch=branch,
        **{**FILE["branches"][0]["steps"][0], "piece": {}, "params": {}},
    )
    return exploration


def test_the_exploration_page_says_it_came_from_a_file(owner, imported, recorded):
    page = owner.get(f"/explore/{imported.pk}/").content.decode()
    assert 'data-testid="imported-notice"' in page and NOTICE in page
    assert NOTICE not in owner.get(f"/explore/{recorded.pk}/").content.decode()


def test_a_share_link_reader_is_told_too(owner, imported, other_student, admin_user):
    link = ShareLink.objects.create(exploration=imported, created_by=imported.owner)
    link.status = ShareLink.Status.APPROVED
    link.save()
    reader = client_for(other_student)
    opened = reader.get(f"/s/{link.token}/", follow=True)
    html = opened.content.decode()
    assert opened.status_code == 200 and 'data-testid="read-only"' in html
    assert NOTICE in html


def test_the_compare_page_and_the_list_say_so(owner, imported):
    branches = list(imported.branches.order_by("created_at"))
    compare = owner.get(
        f"/explore/{imported.pk}/compare/", {"a": branches[0].pk, "b": branches[1].pk}
    )
    assert compare.status_code == 200, compare.content
    assert NOTICE in compare.content.decode()
    listing = owner.get("/explore/").content.decode()
    assert listing.count('data-testid="imported-tag"') == 1


def test_the_api_says_so_and_a_client_cannot_set_it(owner, api, imported, recorded):
    assert owner.get(f"/api/v1/explorations/{imported.pk}/").json()["imported"] is True
    assert owner.get(f"/api/v1/explorations/{recorded.pk}/").json()["imported"] is False
    listed = {row["id"]: row["imported"] for row in owner.get("/api/v1/explorations/").json()}
    assert listed == {str(imported.pk): True, str(recorded.pk): False}
    renamed = owner.patch(f"/api/v1/explorations/{imported.pk}/", {"imported": False}, "json")
    assert renamed.status_code == 200
    imported.refresh_from_db()
    assert imported.imported is True


def test_the_export_says_so(owner, imported, recorded):
    exported = owner.get(f"/api/v1/explorations/{imported.pk}/export/").json()
    assert exported["exploration"]["imported"] is True
    assert transfer.export_exploration(recorded)["exploration"]["imported"] is False


def test_a_file_cannot_claim_it_was_recorded_here(owner):
    claims = copy.deepcopy(FILE)
    claims["exploration"]["imported"] = False
    response = owner.post("/api/v1/explorations/import/", claims, "json")
    assert response.status_code == 201, response.content
    assert Exploration.objects.get(pk=response.json()["id"]).imported is True


def test_a_fork_of_an_imported_exploration_still_says_so(owner, imported, recorded):
    forked = owner.post(f"/api/v1/explorations/{imported.pk}/fork/")
    assert forked.status_code == 201, forked.content
    assert forked.json()["imported"] is True
    fork = Exploration.objects.get(pk=forked.json()["id"])
    assert fork.forked_from == imported and fork.imported
    assert owner.post(f"/api/v1/explorations/{recorded.pk}/fork/").json()["imported"] is False


def test_a_lesson_imported_from_a_file_marks_its_explorations(instructor, student):
    teacher = client_for(instructor)
    lesson_file = {
        "format": "tokenlens-lesson",
        "version": 1,
        "lesson": {"title": "Capitals", "notes": "", "goals": []},
        "items": [{"note": "", "suggested_prompts": [], "exploration": copy.deepcopy(FILE)}],
    }
    response = teacher.post("/api/v1/lessons/import/", lesson_file, "json")
    assert response.status_code == 201, response.content
    item = Exploration.objects.get(lesson_items__lesson_id=response.json()["id"])
    assert item.imported
    page = teacher.get(f"/lessons/{response.json()['id']}/").content.decode()
    assert 'data-testid="imported-tag"' in page
