"""The OpenAPI schema is valid, and the API keeps to it under generated input.

schemathesis runs as an integrator would run it: against the app served on a real
port (pytest-django's live server on the test database), over HTTP, with a token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from crm.models import User

SCHEMATHESIS_EXAMPLES = int(os.environ.get("CRM_SCHEMATHESIS_EXAMPLES", "8"))


@pytest.mark.django_db
def test_schema_is_valid_openapi_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    paths = set(schema["paths"])
    for path in (
        "/api/v1/emails/",
        "/api/v1/emails/{id}/send/",
        "/api/v1/emails/claim/",
        "/api/v1/emails/{id}/delivery-result/",
        "/api/v1/attachments/",
        "/api/v1/templates/{id}/instantiate/",
        "/api/v1/queues/{id}/approve/",
        "/api/v1/organization/",
        "/api/v1/bulk-sends/",
        "/api/v1/bulk-sends/{id}/",
        "/api/v1/bulk-sends/{id}/cancel/",
    ):
        assert path in paths, f"{path} is not in the schema"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_server, settings, tmp_path
):
    settings.DEBUG = True
    settings.CRM_API_THROTTLE_USER = ""
    settings.CRM_API_THROTTLE_ANON = ""
    call_command("load_demo_data")
    token = Token.objects.create(user=User.objects.get(username="admin"))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{live_server.url}/api/schema/",
        "--header",
        f"Authorization: Token {token.key}",
        "--checks",
        "not_a_server_error,response_schema_conformance,status_code_conformance,"
        "content_type_conformance",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--seed",
        "20261121",
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


@pytest.mark.django_db
def test_swagger_ui_is_served_from_local_assets(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html and "unpkg" not in html
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"openapi: 3" in schema.content
