"""Log lines join up: the request id of an HTTP request is answered in X-Request-ID, is on
every line logged while it runs, and goes with the tasks it publishes; a task's lines
carry its task id; an email's lines carry its id (common.logging, activities.eventlog)."""

from __future__ import annotations

import json
import logging
import logging.config
import uuid

import pytest
from django.conf import settings

from activities.models import Email, EmailStatus
from common.logging import ContextFilter, logging_config
from tests.api import client_for
from tests.celery_worker import private_broker, running_worker, wait_for, worker_env

EMAILS = "/api/v1/emails/"


@pytest.fixture
def event_lines():
    """The records of activities.events, with the fields the console handler adds."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("activities.events")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.mark.django_db
def test_a_request_gets_an_id_answered_and_on_its_log_lines(owner, event_lines):
    response = client_for(owner).post(EMAILS, {"subject": "Hi", "to": ["ann@example.com"]})
    assert response.status_code == 201, response.content
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    created = [r for r in event_lines if r.email_id == response.json()["id"]]
    assert [r.to_status for r in created] == ["draft"]
    assert created[0].request_id == request_id
    assert created[0].task_id == "-"
    assert (
        created[0].getMessage()
        == f"email {response.json()['id']} status - -> draft by alice: created"
    )


@pytest.mark.django_db
def test_a_request_id_set_by_the_proxy_is_kept(owner, event_lines):
    given = uuid.uuid4().hex
    response = client_for(owner).post(
        EMAILS, {"subject": "Hi", "to": ["ann@example.com"]}, HTTP_X_REQUEST_ID=given
    )
    assert response["X-Request-ID"] == given
    assert {r.request_id for r in event_lines} == {given}


@pytest.mark.django_db
def test_a_malformed_request_id_is_replaced(owner, event_lines):
    response = client_for(owner).post(
        EMAILS, {"subject": "Hi", "to": ["ann@example.com"]}, HTTP_X_REQUEST_ID="x\r\ny"
    )
    assert response["X-Request-ID"] != "x\r\ny"
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_logs_json_lines_with_its_task_id_and_the_request_id_it_came_with(
    org, owner, tmp_path, smtp_server
):
    """Sent over the API, delivered by a real worker process logging JSON."""
    with private_broker(tmp_path / "data") as broker:
        created = client_for(owner).post(EMAILS, {"subject": "Hi", "to": ["ann@example.com"]})
        email_id = created.json()["id"]
        sent = client_for(owner).post(f"{EMAILS}{email_id}/send/", {})
        assert sent.status_code == 202, sent.content
        env = worker_env(broker=broker, smtp_port=smtp_server.port, LOG_FORMAT="json")
        with running_worker("json-log", tmp_path, env) as worker:
            wait_for(
                lambda: Email.objects.filter(pk=email_id, status=EmailStatus.SENT).exists(),
                what="delivery",
                workers=(worker,),
            )
            log = worker.log()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records, log
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    mine = {r["to_status"]: r for r in records if r.get("email_id") == email_id}
    assert set(mine) == {"sending", "sent"}, log
    task_id = mine["sent"]["task_id"]
    assert task_id not in ("-", None) and mine["sending"]["task_id"] == task_id
    # The request that published the task: its id goes with the task.
    assert mine["sent"]["request_id"] == sent["X-Request-ID"]
    assert any(r["logger"] == "celery.app.trace" and r["task_id"] == task_id for r in records)


def test_the_smtp_listener_libraries_command_by_command_log_is_left_out(capsys):
    """aiosmtpd logs each command of each session (addresses included) at INFO."""
    logging.config.dictConfig(logging_config(level="INFO", fmt="plain"))
    try:
        logging.getLogger("mail.log").info("('127.0.0.1', 5) >> b'mail FROM:<ann@example.com>'")
        logging.getLogger("mail.log").warning("a session failed")
        logging.getLogger("activities.inbound_smtp").info("stored a message")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    err = capsys.readouterr().err
    assert "mail FROM" not in err
    assert "a session failed" in err and "stored a message" in err
