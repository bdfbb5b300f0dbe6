"""The OpenAPI schema (drf-spectacular) and a Schemathesis run over every operation of it,
in-process through the WSGI app, as a visitor's browser, with an instructor's token and (for
the review queue and the activity log) an admin's: no request, however odd, gets a server
error, and every answer's status, content type and body are the ones the schema documents.
Then the regression tests of what the run and probing past it found (each was a 500)."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from importlib import import_module

import pytest
import schemathesis
import yaml
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import URLPattern, URLResolver
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from inspector import api_urls
from inspector.accounts import access
from inspector.lessons import files as lesson_files
from inspector.models import Branch, Exploration, Lesson, LessonItem, ShareLink, Step
from inspector.transfer import services as transfer
from tests.conftest import client_for, make_person

SMOL = "smollm2-135m-instruct"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Fixed ids of the objects each person owns (see Person.aim_at_own_objects).
EXPLORATION_ID = uuid.UUID("00000000-0000-4000-8000-00000000e001")
BRANCH_ID = uuid.UUID("00000000-0000-4000-8000-00000000b001")
LESSON_ID = uuid.UUID("00000000-0000-4000-8000-00000000a001")
RESOURCES = {  # /api/v1/<resource>/{id}/: the kind of object {id} names
    "explorations": "exploration",
    "branches": "branch",
    "lessons": "lesson",
    "shares": "share",
}


# --- the schema itself ---------------------------------------------------------------------


def test_the_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", validate=True, fail_on_warn=True, file=str(target))
    assert yaml.safe_load(target.read_text())["info"]["title"] == "TokenLens API"


def _routes(patterns, prefix: str = "") -> list[str]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and pattern.name != "api-not-found":
            found.append(prefix + str(pattern.pattern))
    return found


def _as_openapi_path(route: str) -> str:
    """ "branches/<uuid:pk>/fork/" -> "/api/v1/branches/{id}/fork/" (drf-spectacular's names)."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return "/api/v1/" + path.replace("{pk}", "{id}")


def test_every_api_route_is_in_the_schema(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    routes = {_as_openapi_path(route) for route in _routes(api_urls.urlpatterns)}
    assert len(routes) > 30
    assert sorted(routes - set(schema["paths"])) == []


def test_the_schema_is_served_as_yaml_and_json(client):
    as_yaml = client.get("/api/schema/")
    assert as_yaml.status_code == 200
    assert as_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert "/api/v1/tokenize/" in yaml.safe_load(as_yaml.content)["paths"]
    as_json = client.get("/api/schema/?format=json")
    assert as_json.status_code == 200
    assert as_json.json()["openapi"].startswith("3.")


def test_swagger_ui_loads_its_assets_from_our_own_static_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "/static/drf_spectacular_sidecar/" in html
    assert re.findall(r"""(?:src|href)=["']?(https?://[^"' >]+)""", html) == []
    assert re.findall(r"https?://(?!localhost|testserver)[\w.-]+/[^\s\"']*\.(?:js|css)", html) == []


# --- Schemathesis over every operation -----------------------------------------------------

# The analysis endpoints run the real models; their coverage phase sends only the invalid
# boundary cases (each answered by validation, fast), and fuzzing sends the valid ones.
ANALYSES = (
    "tokenize|distribution|sampling|attention|attention/graph|heads|attribution|embeddings|"
    "vocabulary|logit-lens"
)
MODEL_WORK = rf"^/api/v1/({ANALYSES})/$"
# All but the review queue and the activity log (schema.include() does not narrow a schema
# whose config has "operations" in schemathesis 4.32, so the admin run excludes the rest).
NOT_ADMIN_WORK = r"^/api/v1/(?!activity/|shares/)"
CONFIG = {
    "generation": {"deterministic": True},
    "phases": {"stateful": {"enabled": False}},
    "operations": [
        {
            "include-path-regex": MODEL_WORK,
            "phases": {"coverage": {"generation": {"mode": "negative"}}},
        }
    ],
}
HYPOTHESIS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json",
    get_wsgi_application(),
    config=schemathesis.Config.from_dict(CONFIG),
)


@dataclass
class Person:
    """Who sends the requests (headers and cookies for each call) and the ids of what they own,
    so that generated requests can name objects that exist (see aim_at_own_objects)."""

    headers: dict
    cookies: dict
    ids: dict[str, object]
    turns: itertools.count = field(default_factory=itertools.count)

    def send(self, case) -> None:
        """Call the app with the case (every other one aimed at this person's own objects) and
        run the checks on the answer."""
        if next(self.turns) % 2 == 0:
            self.aim_at_own_objects(case)
        case.call_and_validate(headers=self.headers, cookies=self.cookies, checks=CHECKS)

    def aim_at_own_objects(self, case) -> None:
        """Put the ids of this person's objects into the case's path."""
        resource = case.operation.path.split("/")[3]  # /api/v1/<resource>/{id}/...
        for name in case.path_parameters or {}:
            kind = RESOURCES.get(resource) if name == "id" else name.removesuffix("_id")
            if kind in self.ids:
                case.path_parameters[name] = str(self.ids[kind])


def _exploration_with_steps(**owner) -> Exploration:
    exploration = Exploration.objects.create(
        id=EXPLORATION_ID, model_key=SMOL, prompt="The capital of France is", **owner
    )
    branch = Branch.objects.create(id=BRANCH_ID, exploration=exploration, label="main")
    for index, (token_id, text) in enumerate([(7042, " Paris"), (30, ".")]):
        chosen = {"id": token_id, "text": text, "p_base": 0.6, "p_final": 0.7}
        Step.objects.create(
            branch=branch,
            index=index,
            token_id=token_id,
            text=text,
            mode=Step.Mode.GREEDY,
            p_base=0.6,
            p_final=0.7,
            rank=1,
            distribution={"tokens": [chosen], "chosen": chosen, "entropy": 1.5},
        )
    return exploration


@pytest.fixture
def in_process_requests(transactional_db):
    """Requests share the test's database connection, as with Django's test client (one new
    PostgreSQL connection per request would make the run several times slower)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def visitor(in_process_requests) -> Person:
    """A visitor's browser: a session cookie with the CSRF cookie and header, owning an
    exploration with two steps."""
    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    store.create()
    store[access.VISITOR_KEY] = store.session_key
    store.save()
    _exploration_with_steps(session_key=store.session_key)
    csrf = get_random_string(32)
    return Person(
        headers={"X-CSRFToken": csrf},
        cookies={django_settings.SESSION_COOKIE_NAME: store.session_key, "csrftoken": csrf},
        ids={"exploration": EXPLORATION_ID, "branch": BRANCH_ID},
    )


@pytest.fixture
def token_user(in_process_requests) -> Person:
    """A script with an instructor's API token, who owns an exploration with two steps, a
    lesson holding it, and a share link of it."""
    user = make_person("schemathesis", "Instructor")
    exploration = _exploration_with_steps(owner=user)
    lesson = Lesson.objects.create(id=LESSON_ID, owner=user, title="Greedy decoding")
    item = LessonItem.objects.create(lesson=lesson, exploration=exploration, position=0)
    share = ShareLink.objects.create(exploration=exploration, created_by=user)
    return Person(
        headers={"Authorization": f"Token {Token.objects.create(user=user).key}"},
        cookies={},
        ids={
            "exploration": EXPLORATION_ID,
            "branch": BRANCH_ID,
            "lesson": LESSON_ID,
            "item": item.pk,
            "share": share.pk,
        },
    )


@pytest.fixture
def admin(in_process_requests) -> Person:
    """A script with an admin's API token; a student's exploration waits for review."""
    student = make_person("stu", "Student")
    exploration = _exploration_with_steps(owner=student)
    share = ShareLink.objects.create(exploration=exploration, created_by=student)
    user = make_person("ada", staff=True)
    return Person(
        headers={"Authorization": f"Token {Token.objects.create(user=user).key}"},
        cookies={},
        ids={"share": share.pk},
    )


@schema.parametrize()
@HYPOTHESIS
def test_no_request_from_a_visitor_gets_a_server_error(case, visitor):
    visitor.send(case)


@schema.exclude(path_regex=MODEL_WORK).parametrize()
@HYPOTHESIS
def test_no_request_with_a_token_gets_a_server_error(case, token_user):
    token_user.send(case)


@schema.exclude(path_regex=NOT_ADMIN_WORK).parametrize()
@HYPOTHESIS
def test_no_request_from_an_admin_gets_a_server_error(case, admin):
    admin.send(case)


# --- What the run, and probing past it, found ---------------------------------------------
# Django's HTML 404 and CSRF 403 pages where the API promises its JSON error, and 500s (the
# NUL ones only on PostgreSQL, which keeps no NUL in text or jsonb).


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
@pytest.mark.parametrize(
    "url", ["/api/v1/explorations/null,null/", "/api/v1/lessons/%0A/", "/api/v1/nowhere"]
)
def test_any_other_api_address_answers_the_json_404(api, method, url):
    response = getattr(api, method)(url)
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "path"


def test_a_body_nested_too_deeply_is_a_400(api):
    body = "[" * 100_000 + "]" * 100_000
    response = api.post("/api/v1/tokenize/", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_the_activity_filter_refuses_a_nul(admin_user):
    response = client_for(admin_user).get("/api/v1/activity/", {"action": "share\x00create"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "action"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "constraint",
    [{"type": "choice", "spec": ["yes\x00", "no"]}, {"type": "regex", "spec": "a\x00"}],
)
def test_a_constraint_holding_a_nul_is_refused(api, constraint):
    body = {"model": SMOL, "prompt": "Yes or no?", "constraint": constraint}
    response = api.post("/api/v1/explorations/", body, "json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "field": "constraint.spec",
        "message": "Null characters are not allowed.",
    }


@pytest.mark.django_db
def test_a_contrast_with_a_lone_surrogate_is_refused(api):
    body = json.dumps({"model": SMOL, "text": "Hello there", "contrast": ["\ud800", "a"]})
    response = api.post("/api/v1/logit-lens/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "contrast"


@pytest.mark.django_db
def test_the_nul_token_is_recorded_with_its_symbol(api, smollm2):
    (nul_id,) = smollm2.tokenizer.encode("\x00", add_special_tokens=False)
    exploration = api.post("/api/v1/explorations/", {"model": SMOL, "prompt": "Hi"}, "json")
    branch = exploration.json()["branches"][0]["id"]
    response = api.post(f"/api/v1/branches/{branch}/steps/", {"mode": "force", "token_id": nul_id})
    assert response.status_code == 201, response.content
    (step,) = response.json()["steps"]
    assert step["token_id"] == nul_id and step["text"] == "\u2400"
    assert step["piece"]["bytes"] == "00"
    assert Step.objects.get(branch_id=branch).text == "\u2400"


@pytest.fixture
def export_file(student):
    """The export of a student's exploration with two steps."""
    return transfer.export_exploration(_exploration_with_steps(owner=student))


@pytest.mark.parametrize(
    "name, value, field",
    [
        ("rank", 2**40, "rank"),
        ("piece", {"text": "\x00", "bytes": "00"}, "piece"),
        ("distribution", {"tokens": [], "chosen": {"text": "\x00"}}, "distribution"),
        ("params", {"\ud800": 1}, "params"),
    ],
)
def test_an_import_with_what_no_column_holds_is_refused(student, export_file, name, value, field):
    export_file["branches"][0]["steps"][1][name] = value
    body = json.dumps(export_file, cls=DjangoJSONEncoder)
    response = client_for(student).post(
        "/api/v1/explorations/import/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == f"branches[0].steps[1].{field}"


@pytest.mark.parametrize(
    "where, value, field",
    [
        ("lesson.title", "Greedy\x00", "title"),
        ("lesson.goals", ["\ud800"], "goals"),
        ("items.0.note", "a\x00", "items[0].note"),
    ],
)
def test_a_lesson_import_with_what_no_column_holds_is_refused(instructor, where, value, field):
    lesson = Lesson.objects.create(owner=instructor, title="Greedy decoding")
    exploration = _exploration_with_steps(owner=instructor)
    LessonItem.objects.create(lesson=lesson, exploration=exploration, position=0)
    data = lesson_files.export_lesson(lesson)
    *path, name = where.split(".")
    target = data
    for part in path:
        target = target[int(part)] if part.isdigit() else target[part]
    target[name] = value
    body = json.dumps(data, cls=DjangoJSONEncoder)
    response = client_for(instructor).post(
        "/api/v1/lessons/import/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert Lesson.objects.count() == 1
