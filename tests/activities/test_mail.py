"""The bytes of a message: the fast path for blob attachments writes what Python's
generator would have written."""

from __future__ import annotations

import os
import re
from email import message_from_bytes, policy

import pytest

from activities.mail import build_message, encoded_blobs, message_bytes
from activities.services.attachments import attachment_store
from activities.services.emails import email_create

pytestmark = pytest.mark.django_db


def normalised(data: bytes) -> bytes:
    """Multipart boundaries are drawn at random each time, and Date is the current second."""
    for i, boundary in enumerate(re.findall(rb'boundary="([^"]+)"', data)):
        data = data.replace(boundary, b"BOUNDARY%d" % i)
    return re.sub(rb"\r\nDate: [^\r]*\r\n", b"\r\nDate: -\r\n", data)


@pytest.mark.parametrize(
    "files",
    [
        [],
        [("report.bin", os.urandom(150_000))],
        [("one-byte.txt", b"x")],  # the smallest part (an empty file is refused)
        [("Tilbud på støvler – €.txt", "Pris: 100 €\n".encode()), ("b.bin", os.urandom(57 * 3))],
    ],
    ids=["none", "binary", "one-byte", "two-non-ascii"],
)
def test_message_bytes_are_what_the_generator_writes(org, owner, files):
    email = email_create(
        actor=owner,
        to=["Ann Lee <ann@example.com>"],
        subject="Figures",
        body_text="Hello Ann",
        body_html="<p>Hello <b>Ann</b></p>",
    )
    for name, data in files:
        attachment_store(owner=email, source=data, filename=name)
    # The same blob twice: the second comes from the cache.
    if files:
        attachment_store(owner=email, source=files[0][1], filename="again-" + files[0][0])

    message = build_message(email)
    fast = message_bytes(message)
    slow = message.message().as_bytes(linesep="\r\n")

    assert normalised(fast) == normalised(slow)
    parsed = message_from_bytes(fast, policy=policy.default)
    got = [(p.get_filename(), p.get_payload(decode=True)) for p in parsed.iter_attachments()]
    expected = [(name, data) for name, data in files]
    if files:
        expected.append(("again-" + files[0][0], files[0][1]))
    assert got == expected
    # The message can be written again: the placeholders were put back.
    assert normalised(message_bytes(message)) == normalised(fast)


def test_the_encoded_cache_is_bounded_in_bytes(org, owner):
    email = email_create(actor=owner, to=["ann@example.com"], subject="s", body_text="x")
    for i in range(6):
        attachment_store(owner=email, source=os.urandom(10_000) + bytes([i]), filename=f"{i}")
    small = type(encoded_blobs)(max_bytes=120_000)  # an encoding (LF and CRLF) is ~27 KB
    for attachment in email.attachments.order_by("pk"):
        small.get(attachment.blob)
    assert 0 < small._size <= small.max_bytes
    assert len(small._items) == 4  # the two oldest were dropped
