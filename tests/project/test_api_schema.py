"""The OpenAPI schema is valid, and the API keeps to it under generated input.

schemathesis runs as an integrator would run it: against the app served on a real
port (pytest-django's live server on the test database), over HTTP, with a token. It
runs every check, every phase (examples, coverage, fuzzing, stateful) and positive and
negative data, deterministically (a fixed seed, no example database), and any failure
fails the test. What a check cannot apply to, and why, is in ``schemathesis.toml``.
The vendors' adapters (compat/) are run apart, for server errors and content types.
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
ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.django_db
def test_the_schema_states_the_bounds_the_server_enforces(tmp_path):
    """A few of the facts schemathesis found missing (issue 11), checked without a run."""
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    components = schema["components"]["schemas"]

    def parameters(path: str, method: str = "get") -> dict:
        return {p["name"]: p["schema"] for p in schema["paths"][path][method]["parameters"]}

    contacts = parameters("/api/v1/contacts/")
    assert contacts["page"]["minimum"] == contacts["page_size"]["minimum"] == 1
    assert contacts["account"]["minimum"] == 1
    assert {"format": "date-time"} in contacts["created_after"]["anyOf"]
    key = parameters("/api/v1/emails/", "post")["Idempotency-Key"]
    assert (key["minLength"], key["maxLength"]) == (1, 255) and key["pattern"]
    assert "Idempotency-Key" in parameters("/api/v1/templates/", "post")
    organization = components["PatchedOrganizationRequest"]["properties"]
    assert (
        organization["tracking_token_digits"]["minimum"],
        organization["tracking_token_digits"]["maximum"],
    ) == (1, 12)
    assert organization["max_attachment_bytes"]["maximum"] == 1024**3
    assert organization["name"]["pattern"] == r"\S"  # trimmed, so "  " is blank
    results = components["EmailDeliveryResultsRequest"]["properties"]["results"]
    assert (results["minItems"], results["maxItems"]) == (1, 500)
    assert components["SuppressedAddressRequest"]["properties"]["address"]["format"] == "email"
    assert "400" in schema["paths"]["/api/v1/emails/{id}/events/"]["get"]["responses"]
    recipient = components["EmailWriteRequest"]["properties"]["to"]["items"]["oneOf"][1]
    assert recipient["additionalProperties"] is False
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if path != "/api/v1/auth/token/" and not path.startswith("/api/v1/attachments/"):
                assert set(content) <= {"application/json"}, f"{method} {path}: {set(content)}"


# Our own API (API.md's contract); the vendors' adapters (compat/) are run below.
OWN_API = r"^/api/v1/(?!Agents/)"
VENDOR_APIS = r"^/(api/data/v9\.2|graph/v1\.0|api/v1/Agents/EMail|api/v2)/"


def _schemathesis(live_server, tmp_path, *options: str) -> subprocess.CompletedProcess:
    call_command("load_demo_data")
    token = Token.objects.create(user=User.objects.get(username="admin"))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        f"{live_server.url}/api/schema/",
        "--header",
        f"Authorization: Token {token.key}",
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
        *options,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    return result


@pytest.fixture
def unthrottled(settings):
    settings.DEBUG = True
    settings.CRM_API_THROTTLE_USER = ""
    settings.CRM_API_THROTTLE_ANON = ""
    settings.CRM_API_THROTTLE_LOGIN = ""


@pytest.mark.slow
@pytest.mark.postgres_lane  # the production database's lane; 4 minutes
@pytest.mark.django_db(transaction=True)
def test_schemathesis_with_every_check_finds_no_failure(live_server, unthrottled, tmp_path):
    result = _schemathesis(
        live_server,
        tmp_path,
        "--include-path-regex",
        OWN_API,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--mode",
        "all",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
    )
    summary = result.stdout.rpartition("Test Phases:")[2]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, f"the {phase} phase did not run and pass"


@pytest.mark.slow
@pytest.mark.postgres_lane  # about 2 minutes
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_in_the_vendor_adapters(
    live_server, unthrottled, tmp_path
):
    """The vendors' request bodies are theirs, documented as open objects, so that a
    well-formed body may still be refused for its content; what holds for every input
    is that none is a 500, and that every answer is of the documented content type."""
    result = _schemathesis(
        live_server,
        tmp_path,
        "--include-path-regex",
        VENDOR_APIS,
        "--checks",
        "not_a_server_error,content_type_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
    )
    summary = result.stdout.rpartition("Test Phases:")[2]
    # The vendors' operations carry no examples in the schema: that phase has none to run.
    for phase in ("Coverage", "Fuzzing"):
        assert f"✅ {phase}" in summary, f"the {phase} phase did not run and pass"


@pytest.mark.django_db
def test_swagger_ui_is_served_from_local_assets(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html and "unpkg" not in html
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"openapi: 3" in schema.content
