"""Every setting is documented, and the embedded default needs no services."""

import json
import os
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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
    return _read_setting(
        env,
        "{'db': s.DATABASES['default']['ENGINE'], "
        "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], "
        "'in_process': s.TOKENLENS_TASKS_IN_PROCESS, 'broker': s.CELERY_BROKER_URL}",
    )


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


def _read_setting(env: dict, expression: str):
    """`expression` (over the settings as `s`) in a fresh process with only `env` set."""
    clean = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({expression}))"
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


def _secret_key_with(env: dict) -> str:
    return _read_setting(env, "s.SECRET_KEY")


def test_without_secret_key_a_key_file_is_made_once_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "var" / "secret_key"
    first = _secret_key_with({"DEBUG": "false", "TOKENLENS_SECRET_KEY_FILE": str(path)})
    assert len(first) >= 50
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = _secret_key_with({"DEBUG": "false", "TOKENLENS_SECRET_KEY_FILE": str(path)})
    assert again == first
    assert list(path.parent.iterdir()) == [path]  # no draft left behind


def test_the_environment_secret_key_wins_over_the_file(tmp_path):
    path = tmp_path / "secret_key"
    key = _secret_key_with(
        {"DEBUG": "false", "SECRET_KEY": "k" * 60, "TOKENLENS_SECRET_KEY_FILE": str(path)}
    )
    assert key == "k" * 60
    assert not path.exists()


def test_two_processes_starting_together_share_one_key(tmp_path):
    from tokenlens_site.settings import secret_key_from_file

    path = tmp_path / "secret_key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: secret_key_from_file(path), range(32)))
    assert keys == {path.read_text().strip()}


@pytest.mark.parametrize("content", ["", "short"])
def test_an_unusable_key_file_fails_loudly(tmp_path, content):
    path = tmp_path / "secret_key"
    path.write_text(content)
    with pytest.raises(subprocess.CalledProcessError) as caught:
        _settings_with({"DEBUG": "false", "TOKENLENS_SECRET_KEY_FILE": str(path)})
    assert "holds no usable secret key" in caught.value.stderr


def test_a_key_file_that_cannot_be_made_fails_loudly(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(subprocess.CalledProcessError) as caught:
        _settings_with({"TOKENLENS_SECRET_KEY_FILE": str(blocker / "secret_key")})
    assert "secret key file" in caught.value.stderr


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-key-" + "x7Q2" * 12,
    "ALLOWED_HOSTS": "tokenlens.example.org",
    "TOKENLENS_HTTPS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def test_the_documented_production_environment_passes_check_deploy_without_warnings():
    clean = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={**clean, **PRODUCTION},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "System check identified no issues (0 silenced)." in checked.stdout
    readme = (ROOT / "README.md").read_text()
    assert all(
        f"{name}={value}" in readme for name, value in PRODUCTION.items() if name != "SECRET_KEY"
    )


def test_https_is_off_by_default_so_plain_http_works():
    expression = (
        "[s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS]"
    )
    plain = _read_setting({"DEBUG": "false", "SECRET_KEY": "k" * 60}, expression)
    assert plain == [False, False, False, 0, False]
    assert _read_setting({"TOKENLENS_HTTPS": "true"}, expression) == [True] * 3 + [31_536_000, True]
    one_off = {"TOKENLENS_HTTPS": "true", "SECURE_SSL_REDIRECT": "false"}
    assert _read_setting(one_off, expression)[0] is False
    left_empty = {"TOKENLENS_HTTPS": "true", "SECURE_SSL_REDIRECT": "", "SECURE_HSTS_SECONDS": ""}
    assert _read_setting(left_empty, expression) == [True] * 3 + [31_536_000, True]


def test_a_proxy_header_is_trusted_only_when_named():
    assert _read_setting({}, "getattr(s, 'SECURE_PROXY_SSL_HEADER', None)") is None
    named = _read_setting(
        {"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, "s.SECURE_PROXY_SSL_HEADER"
    )
    assert named == ["HTTP_X_FORWARDED_PROTO", "https"]
