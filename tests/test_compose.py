"""docker-compose.yml is the production recipe: every command must name a real entry point."""

import importlib
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _commands(service: dict) -> list[list[str]]:
    """The argv of each program a service's command runs (sh -c "a && b" gives two)."""
    command = service["command"]
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in words[2].split("&&")]
    return [words]


def _check_entry_point(argv: list[str]) -> None:
    program = argv[0]
    if program == "daphne":
        module_name, attribute = argv[-1].split(":")
        assert hasattr(importlib.import_module(module_name), attribute)
    elif program == "celery":
        app_module = argv[argv.index("-A") + 1]
        assert hasattr(importlib.import_module(app_module), "celery_app")
        assert argv[argv.index("-A") + 2] in {"worker", "inspect"}
    elif program == "python":
        assert argv[1] == "manage.py" and (ROOT / "manage.py").exists()
        assert argv[2] in get_commands(), f"no management command {argv[2]}"
    else:
        pytest.fail(f"unknown program {program}")


def test_the_stack_has_its_services():
    assert {"db", "redis", "web", "web-2", "worker", "worker-gemma"} <= set(SERVICES)


def test_two_web_processes_share_one_configuration_on_two_ports():
    first, second = SERVICES["web"], SERVICES["web-2"]
    assert first["command"] == second["command"]
    assert first["environment"] == second["environment"]
    assert {first["ports"][0], second["ports"][0]} == {"8000:8000", "8001:8000"}


def test_a_worker_per_packaged_model():
    from engine.loading import PACKAGED_MODELS

    served = [
        service["environment"].get("TOKENLENS_WORKER_MODELS")
        for service in SERVICES.values()
        if "celery" in str(service.get("command")) and "worker" in str(service.get("command"))
    ]
    assert sorted(served) == sorted(spec.key for spec in PACKAGED_MODELS)


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if "command" in s])
def test_each_command_names_a_real_entry_point(name):
    for argv in _commands(SERVICES[name]):
        _check_entry_point(argv)


@pytest.mark.parametrize("name", ["db", "redis", "web", "web-2", "worker", "worker-gemma"])
def test_each_long_running_service_has_a_health_check(name):
    assert SERVICES[name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", ["worker", "worker-gemma"])
def test_each_worker_reserves_a_gpu_and_shares_the_model_cache(name):
    worker = SERVICES[name]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "--pool" not in worker["command"]  # the settings' thread pool, as `make worker`
    assert any(volume.startswith("models:") for volume in worker["volumes"])
    assert worker["environment"]["TOKENLENS_MODEL_CACHE"] == "/models"


def test_the_app_talks_to_the_compose_database_and_redis():
    env = SERVICES["web"]["environment"]
    assert "@db:5432/" in env["TOKENLENS_DATABASE_URL"]
    assert env["TOKENLENS_REDIS_URL"].startswith("redis://redis:6379")


def test_no_secret_goes_into_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"var/", ".env", ".venv/"} <= set(ignored)  # var/secret_key, the database, models
    build_steps = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "RUN" in line]
    collect = next(line for line in build_steps if "collectstatic" in line)
    assert "SECRET_KEY=" in collect, "without it, settings would write var/secret_key in the image"
