"""What a class sees when something is missing or broken: the plain 404 and 500 pages, never
Django's debug pages (they list every URL pattern and setting), under `make run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

from inspector.models import Branch, Exploration, ShareLink

ROOT = Path(__file__).resolve().parents[2]
DEBUG_PAGE_MARKS = ("Using the URLconf", "You’re seeing this error because you have")
# Stand-ins that record their environment: `python manage.py <command>` and `daphne`.
FAKE_TOOLS = {
    "python": '#!/bin/sh\nenv -0 > "$ENV_LOG/python-$2.env"\n',
    "daphne": '#!/bin/sh\nenv -0 > "$ENV_LOG/daphne.env"\n',
}


def _make_run_environment(tmp_path: Path) -> dict[str, str]:
    """The environment `make run` gives daphne, read by running the Makefile's real recipe with
    stand-ins for the virtualenv's python and daphne (which only record their environment)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool, script in FAKE_TOOLS.items():
        (fake / tool).write_text(script)
        (fake / tool).chmod(0o755)
    (fake / "stamp").touch()  # "installed": newer than pyproject.toml
    env = {**os.environ, "ENV_LOG": str(tmp_path), "DEBUG": "true"}  # make run overrides it
    env.pop("TOKENLENS_DEMO", None)
    subprocess.run(
        ["make", "--no-print-directory", "run", f"BIN={fake}", f"STAMP={fake}/stamp"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    seeded = _read_env(tmp_path / "python-seed_demo.env")
    assert seeded["TOKENLENS_DEMO"] == "true", "make run must still make the demo accounts"
    assert (tmp_path / "python-collectstatic.env").exists(), "WhiteNoise needs collected files"
    return _read_env(tmp_path / "daphne.env")


def _read_env(path: Path) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in path.read_text().split("\0") if "=" in item)
    return dict(pairs)


def test_make_run_serves_the_plain_404_page_over_http(tmp_path):
    env = _make_run_environment(tmp_path)
    assert env["DEBUG"] == "false"
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client(HTTP_HOST='127.0.0.1').get('/no-such-page/'); "
        "print(json.dumps({'status': r.status_code, 'body': r.content.decode(), "
        "'hsts': r.get('Strict-Transport-Security')}))"
    )
    env["DJANGO_SETTINGS_MODULE"] = "tokenlens_site.settings"
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert output.returncode == 0, output.stderr
    page = json.loads(output.stdout.strip().splitlines()[-1])
    assert page["status"] == 404  # not a redirect to https: plain http://127.0.0.1 works
    assert 'data-testid="not-found"' in page["body"]
    assert not any(mark in page["body"] for mark in DEBUG_PAGE_MARKS)
    assert page["hsts"] is None


@pytest.mark.django_db
def test_a_hidden_share_link_is_the_plain_404_page(client, settings, student):
    settings.DEBUG = False
    exploration = Exploration.objects.create(owner=student, model_key="m", prompt="Hello")
    Branch.objects.create(exploration=exploration, label="main")
    link = ShareLink.objects.create(
        exploration=exploration, status=ShareLink.Status.HIDDEN, reason="Personal data"
    )
    response = client.get(f"/s/{link.token}/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "404.html" in [template.name for template in response.templates]
    assert "Not found" in html and "revokes it or an admin hides it" in html
    assert not any(mark in html for mark in DEBUG_PAGE_MARKS)
    assert "Personal data" not in html


def test_the_500_page_needs_no_database_and_no_context():
    # No django_db mark: touching the database here would raise.
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
