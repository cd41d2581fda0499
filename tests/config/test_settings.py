"""The settings as production reads them: each case in a fresh interpreter with its own
environment (the test run's own settings are already loaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "k" * 20 + "-production-like-key-0123456789"
# Variables of the test run that would change what is read here.
_CLEARED = (
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "DEBUG",
    "CRM_HTTPS",
    "CRM_STATIC_HASHED",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "LOG_FORMAT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # set by the browser tests for their own process
)


def run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    base.update(
        {
            "CRM_DATA_DIR": str(tmp_path / "data"),
            "CRM_QUIET": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True
    )


READ = """
import json
from config import settings as s
print(json.dumps({name: getattr(s, name, None) for name in %r}, default=str))
"""


def read(names: list[str], tmp_path: Path, **env: str) -> dict:
    result = run(READ % (names,), tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_a_key_start_up_refuses_and_says_how_to_give_one(tmp_path):
    result = run("import config.settings", tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is not set" in result.stderr
    assert str(tmp_path / "data" / "secret_key") in result.stderr


def test_with_debug_on_a_key_is_still_needed(tmp_path):
    result = run("import config.settings", tmp_path, DEBUG="true")
    assert "SECRET_KEY is not set" in result.stderr


def test_a_short_key_is_refused(tmp_path):
    result = run("import config.settings", tmp_path, SECRET_KEY="short")
    assert "SECRET_KEY is too short" in result.stderr


def test_the_key_of_the_installation_is_read_from_its_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret_key").write_text(KEY + "\n")
    assert read(["SECRET_KEY"], tmp_path) == {"SECRET_KEY": KEY}
    other = tmp_path / "elsewhere"
    other.write_text("x" * 40)
    assert read(["SECRET_KEY"], tmp_path, SECRET_KEY_FILE=str(other)) == {"SECRET_KEY": "x" * 40}
    # The environment wins over the file.
    assert read(["SECRET_KEY"], tmp_path, SECRET_KEY=KEY + "env")["SECRET_KEY"] == KEY + "env"


def test_debug_is_off_unless_asked_for(tmp_path):
    assert read(["DEBUG"], tmp_path, SECRET_KEY=KEY) == {"DEBUG": False}
    assert read(["DEBUG"], tmp_path, SECRET_KEY=KEY, DEBUG="true") == {"DEBUG": True}


HTTPS = [
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_PROXY_SSL_HEADER",
]


def test_with_debug_off_the_https_block_is_on(tmp_path):
    values = read(HTTPS, tmp_path, SECRET_KEY=KEY)
    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_debug_or_plain_http_turns_the_block_off_and_each_setting_can_be_set_alone(tmp_path):
    for env in ({"DEBUG": "true"}, {"CRM_HTTPS": "false"}):
        values = read(HTTPS, tmp_path, SECRET_KEY=KEY, **env)
        assert values["SECURE_SSL_REDIRECT"] is False
        assert values["SESSION_COOKIE_SECURE"] is False
        assert values["SECURE_HSTS_SECONDS"] == 0
        assert values["SECURE_PROXY_SSL_HEADER"] is None
    values = read(
        HTTPS,
        tmp_path,
        SECRET_KEY=KEY,
        SECURE_HSTS_SECONDS="600",
        SECURE_SSL_REDIRECT="false",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Scheme",
    )
    assert values["SECURE_HSTS_SECONDS"] == 600
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_SCHEME", "https"]


def test_production_static_files_have_hashed_compressed_names(tmp_path):
    storage = read(["STORAGES"], tmp_path, SECRET_KEY=KEY)["STORAGES"]
    assert storage["staticfiles"]["BACKEND"] == (
        "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )
    storage = read(["STORAGES"], tmp_path, SECRET_KEY=KEY, DEBUG="true")["STORAGES"]
    assert storage["staticfiles"]["BACKEND"].endswith("StaticFilesStorage")
    assert "Manifest" not in storage["staticfiles"]["BACKEND"]


def test_importing_the_settings_makes_no_folder(tmp_path):
    result = run("import config.settings", tmp_path, SECRET_KEY=KEY)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data").exists()


def test_a_process_makes_the_folders_its_configuration_writes_to(tmp_path):
    result = run("import django; django.setup()", tmp_path, SECRET_KEY=KEY)
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    assert (data / "broker" / "queue").is_dir()
    assert (data / "broker" / "control").is_dir()
    # On PostgreSQL and Redis there is nothing to make.
    result = run(
        "import django; django.setup()",
        tmp_path / "other",
        SECRET_KEY=KEY,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/none",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "other").exists()


def check_deploy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``manage.py check --deploy`` failing on warnings, with production settings."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in _CLEARED},
            "CRM_DATA_DIR": str(tmp_path),
            "SECRET_KEY": "p" * 10 + "a-long-random-production-key-0123456789abcdefghijkl",
            **env,
        },
        capture_output=True,
        text=True,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = check_deploy(tmp_path, ALLOWED_HOSTS="crm.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_finds_what_an_operator_turned_off(tmp_path):
    result = check_deploy(tmp_path, SESSION_COOKIE_SECURE="false")
    assert result.returncode != 0
    assert "security.W012" in result.stdout + result.stderr  # SESSION_COOKIE_SECURE


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_log_lines_carry_the_request_task_and_email_ids(tmp_path, fmt):
    code = (
        "import django, logging; django.setup();"
        "logging.getLogger('activities.events').info('email 7 sent', extra={'email_id': 7})"
    )
    result = run(code, tmp_path, SECRET_KEY=KEY, LOG_FORMAT=fmt)
    assert result.returncode == 0, result.stderr
    line = [x for x in result.stderr.splitlines() if "email 7 sent" in x]
    assert len(line) == 1
    if fmt == "json":
        record = json.loads(line[0])
        assert record["message"] == "email 7 sent"
        assert record["email_id"] == 7
        assert record["request_id"] == "-" and record["task_id"] == "-"
        assert record["level"] == "INFO" and record["logger"] == "activities.events"
    else:
        assert "[request=- task=- email=7] email 7 sent" in line[0]


def test_an_unknown_log_format_is_refused(tmp_path):
    result = run("import config.settings", tmp_path, SECRET_KEY=KEY, LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT must be 'plain' or 'json'" in result.stderr
