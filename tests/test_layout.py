"""The worker boundary in plain sight: the web process, started as daphne starts it, imports
neither torch nor transformers nor the worker's code when a Celery worker does the model work;
the import-linter contracts in pyproject.toml (run by `make test`) keep the packages apart."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
import django
django.setup()
import tokenlens_site.asgi
import tokenlens_site.urls
from django.urls import get_resolver
get_resolver().url_patterns
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "transformers", "worker"})
print("HEAVY:" + ",".join(heavy))
"""


def _modules_loaded_by_the_web_process(**env) -> list[str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tokenlens_site.settings", **env}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("HEAVY:"))
    return [name for name in line.removeprefix("HEAVY:").split(",") if name]


def test_the_web_process_loads_no_torch_when_a_celery_worker_computes():
    # The address need not answer: nothing is sent while the process starts.
    loaded = _modules_loaded_by_the_web_process(TOKENLENS_REDIS_URL="redis://127.0.0.1:1/0")
    assert loaded == []


def test_the_import_contracts_hold():
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "0 broken" in completed.stdout


READY_PROBE = """
import django
django.setup()
from django.contrib.auth.signals import user_logged_in
print("RECEIVERS:" + ",".join(r().__name__ for _key, r, *_ in user_logged_in.receivers if r()))
"""


def test_the_app_connects_the_sign_in_handler_before_any_url_is_loaded():
    """Visitors' work is handed to their account at sign-in; AppConfig.ready connects that,
    so it holds in any process (a worker, a shell), not only once the URLconf imported it."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tokenlens_site.settings"}
    completed = subprocess.run(
        [sys.executable, "-c", READY_PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RECEIVERS:"))
    assert "adopt_visitor_work" in line.removeprefix("RECEIVERS:").split(",")
