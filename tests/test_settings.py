"""Every setting is documented, and the embedded default needs no services."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCE = (ROOT / "tokenlens_site" / "settings.py").read_text()
ENV_NAMES = sorted(set(re.findall(r'env_(?:str|bool|int|list)\(\s*"([A-Z_]+)"', SETTINGS_SOURCE)))


def test_the_settings_read_the_expected_variables():
    assert {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "TOKENLENS_REDIS_URL"} <= set(ENV_NAMES)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_every_setting_is_documented(name):
    assert f"`{name}`" in (ROOT / "README.md").read_text(), f"{name} missing from README"
    assert re.search(rf"^{name}=", (ROOT / ".env.example").read_text(), re.M), name


def _settings_with(env: dict) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], "
        "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], "
        "'in_process': s.TOKENLENS_TASKS_IN_PROCESS, 'broker': s.CELERY_BROKER_URL}))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, "DJANGO_SETTINGS_MODULE": "tokenlens_site.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_the_embedded_default_uses_sqlite_memory_layer_and_in_process_tasks():
    config = _settings_with({})
    assert config["db"] == "django.db.backends.sqlite3"
    assert config["layer"] == "channels.layers.InMemoryChannelLayer"
    assert config["in_process"] is True and config["broker"] == "memory://"


def test_redis_and_postgres_urls_switch_the_stack():
    config = _settings_with(
        {
            "TOKENLENS_REDIS_URL": "redis://127.0.0.1:6379/0",
            "TOKENLENS_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        }
    )
    assert config["db"] == "django.db.backends.postgresql"
    assert config["layer"] == "channels_redis.core.RedisChannelLayer"
    assert config["in_process"] is False and config["broker"].startswith("redis://")


def test_production_without_a_secret_key_fails_loudly():
    with pytest.raises(subprocess.CalledProcessError) as caught:
        _settings_with({"DEBUG": "false"})
    assert "SECRET_KEY must be set" in caught.value.stderr


def test_a_malformed_boolean_fails_loudly():
    with pytest.raises(subprocess.CalledProcessError) as caught:
        _settings_with({"DEBUG": "maybe"})
    assert "DEBUG must be true or false" in caught.value.stderr
