"""The embedded default broker (config/broker.py): a worker never sees half a message."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

import config.broker
from config.celery import app


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    queue = tmp_path / "queue"
    queue.mkdir()
    processed = tmp_path / "processed"
    processed.mkdir()
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(processed),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }


def channel_for(options: dict[str, str]) -> Iterator:
    with Connection(
        "filesystem://", transport="config.broker:Transport", transport_options=options
    ) as connection:
        yield connection.default_channel


@pytest.fixture
def channel(folders):
    yield from channel_for(folders)


@pytest.fixture
def consumer(folders):
    """A second connection on the same folders: the worker's side."""
    yield from channel_for(folders)


def test_a_filesystem_broker_url_uses_this_transport():
    """Whatever broker the suite runs on: the embedded default's URL takes this one."""
    with app.connection_for_write("filesystem://") as connection:
        assert type(connection.transport) is config.broker.Transport
    with app.connection_for_write("redis://127.0.0.1:1/0") as connection:
        assert type(connection.transport) is not config.broker.Transport


def test_a_message_being_written_is_not_visible_to_a_worker(channel, consumer, monkeypatch):
    """kombu's own transport creates the message file first and writes it after: a worker
    listing the folder in between took an empty file and stopped (JSONDecodeError)."""
    seen_while_writing = []
    real_dumps = config.broker.dumps

    def dumps_while_a_worker_looks(payload):
        try:
            seen_while_writing.append(consumer._get("celery"))
        except Empty:
            seen_while_writing.append(None)
        return real_dumps(payload)

    monkeypatch.setattr(config.broker, "dumps", dumps_while_a_worker_looks)
    channel._put("celery", {"body": "hello"})

    assert seen_while_writing == [None]
    assert consumer._get("celery") == {"body": "hello"}
    with pytest.raises(Empty):
        consumer._get("celery")


def test_messages_come_out_whole_and_none_is_left(channel, consumer, folders):
    for number in range(20):
        channel._put("celery", {"number": number})
    # In time order to the millisecond, as kombu's names are.
    assert sorted(consumer._get("celery")["number"] for _ in range(20)) == list(range(20))
    assert list(Path(folders["data_folder_in"]).iterdir()) == []


def test_a_message_that_cannot_be_written_leaves_no_file(channel, folders, monkeypatch):
    def full_disk(payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(config.broker, "str_to_bytes", full_disk)
    with pytest.raises(Exception, match="Cannot add file"):
        channel._put("celery", {"body": "hello"})
    assert list(Path(folders["data_folder_in"]).iterdir()) == []


def test_an_undecodable_message_is_logged_and_skipped(channel, consumer, folders, caplog):
    """A damaged file (or one kombu's own transport left empty) no longer stops the
    worker: it is skipped, and the messages after it are delivered."""
    Path(folders["data_folder_in"], "0_damaged.celery.msg").write_bytes(b"")
    channel._put("celery", {"body": "after"})

    with caplog.at_level(logging.ERROR, logger="config.broker"):
        with pytest.raises(Empty):
            consumer._get("celery")
    assert "not JSON" in caplog.text
    assert consumer._get("celery") == {"body": "after"}
