"""attachments/ over the REST API: uploads in three forms, limits, visibility, the bytes."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http.multipartparser import MultiPartParser
from django.middleware.csrf import _get_new_csrf_string
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from rest_framework.test import APIClient

from activities.errors import AttachmentTooLarge, ValidationFailed
from activities.models import ActivityMimeAttachment, AttachmentBlob, EmailParty, EmailStatus
from activities.services.attachments import attachment_store
from activities.uploads import MULTIPART_OVERHEAD, SizeLimitUploadHandler, base64_chunks
from crm.models import Organization
from tests.api import client_for, count_queries
from tests.factories import EmailFactory, QueueFactory, TemplateFactory

pytestmark = pytest.mark.django_db

LIST = "/api/v1/attachments/"
# Draft and failed emails are editable and take attachments (API.md); no other status does.
NOT_EDITABLE_STATUSES = [s for s in EmailStatus if s not in (EmailStatus.DRAFT, EmailStatus.FAILED)]


def detail(attachment) -> str:
    return f"/api/v1/attachments/{attachment.pk}/"


def content(attachment) -> str:
    return f"/api/v1/attachments/{attachment.pk}/content/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files() -> list[str]:
    """Every file under the test's storage root, temporary ones included."""
    root = Path(settings.MEDIA_ROOT)
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def set_limit(limit: int) -> None:
    org = Organization.get()
    org.max_attachment_bytes = limit
    org.save()


def assert_nothing_stored() -> None:
    assert ActivityMimeAttachment.objects.count() == 0
    assert AttachmentBlob.objects.count() == 0
    assert stored_files() == []


def upload(
    client, owner, data: bytes, name: str = "notes.txt", content_type=None, extra=None, **fields
):
    kind = "template" if owner.__class__.__name__ == "Template" else "email"
    form = {
        "object_type": kind,
        "object_id": owner.pk,
        "file": SimpleUploadedFile(name, data, content_type=content_type or "text/plain"),
        **fields,
    }
    return client.post(LIST, form, format="multipart", **(extra or {}))


def post_json(client, body: dict, **extra):
    return client.post(LIST, body, format="json", **extra)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- People: the personas of tests/conftest.py; the teammate's queue here is one the
# owner is not in, so each sees only the drafts of its own relation.


@pytest.fixture
def draft(owner):
    return EmailFactory(sender_user=owner, created_by=owner)


@pytest.fixture
def queue_draft(teammate):
    """A draft of a queue the teammate is a member of and the owner is not."""
    queue = QueueFactory(name="Sales", members=[teammate])
    return EmailFactory(sender_user=None, sender_queue=queue)


# --- Upload (multipart) ---------------------------------------------------------------


def test_owner_uploads_a_file_to_a_draft(owner, draft):
    data = b"meeting notes\n" * 50

    answer = upload(client_for(owner), draft, data, "notes.txt", subject="Minutes")

    assert answer.status_code == 201, answer.content
    attachment = ActivityMimeAttachment.objects.get()
    blob = AttachmentBlob.objects.get()
    assert answer.json() == {
        "id": attachment.pk,
        "object_type": "email",
        "object_id": draft.pk,
        "filename": "notes.txt",
        "mime_type": "text/plain",
        "size": len(data),
        "attachment_id": sha(data),
        "subject": "Minutes",
        "position": 0,
        "created_at": answer.json()["created_at"],
        "content_url": f"http://testserver/api/v1/attachments/{attachment.pk}/content/",
        "reused": False,
    }
    assert (attachment.email, attachment.template, attachment.blob) == (draft, None, blob)
    assert (blob.sha256, blob.size) == (sha(data), len(data))
    assert stored_files() == [blob.file.name]
    assert default_storage.open(blob.file.name).read() == data


def test_the_same_bytes_twice_are_stored_once_and_reported_as_reused(owner, draft):
    client = client_for(owner)
    data = b"\x00\xffsame bytes" * 1000

    first = upload(client, draft, data, "a.bin")
    second = upload(client, draft, data, "b.bin")

    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["reused"], second.json()["reused"]) == (False, True)
    assert first.json()["attachment_id"] == second.json()["attachment_id"] == sha(data)
    assert AttachmentBlob.objects.count() == 1
    assert [a.filename for a in draft.attachments.order_by("position")] == ["a.bin", "b.bin"]
    assert [a.position for a in draft.attachments.order_by("id")] == [0, 1]


def test_an_empty_file_is_refused(owner, draft):
    """Issue 11: an empty upload was stored as an attachment; it is a mistake to say."""
    answer = upload(client_for(owner), draft, b"", "empty.txt")

    assert answer.status_code == 400, answer.content
    assert answer.json() == {
        "detail": "the file is empty (0 bytes): there is nothing to attach",
        "code": "attachment_empty",
    }
    assert not AttachmentBlob.objects.exists()
    assert not ActivityMimeAttachment.objects.exists()


def test_a_path_in_the_filename_is_dropped(owner, draft):
    answer = upload(client_for(owner), draft, b"root:x:0:0", "../../etc/passwd")

    assert answer.status_code == 201, answer.content
    assert answer.json()["filename"] == "passwd"
    assert ActivityMimeAttachment.objects.get().filename == "passwd"


def test_a_generic_upload_type_is_replaced_by_a_guess_from_the_name(owner, draft):
    answer = upload(
        client_for(owner), draft, b"%PDF-1.4", "terms.pdf", content_type="application/octet-stream"
    )

    assert answer.status_code == 201, answer.content
    assert answer.json()["mime_type"] == "application/pdf"


def test_an_invalid_upload_type_is_400_and_nothing_is_stored(owner, draft):
    answer = upload(client_for(owner), draft, b"x", "a.txt", mime_type="not a type")

    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_mime_type"
    assert_nothing_stored()


def test_an_attachment_subject_with_a_line_break_is_400_and_nothing_is_stored(owner, draft):
    answer = upload(client_for(owner), draft, b"x", "a.txt", subject="one\r\nBcc: evil@x.com")

    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_header"
    assert_nothing_stored()


def test_staff_upload_to_a_template(staff):
    template = TemplateFactory()

    answer = upload(client_for(staff), template, b"brochure", "brochure.pdf")

    assert answer.status_code == 201, answer.content
    assert (answer.json()["object_type"], answer.json()["object_id"]) == ("template", template.pk)
    assert template.attachments.get().filename == "brochure.pdf"


def test_ordinary_users_may_not_add_files_to_templates(owner):
    template = TemplateFactory()

    answer = upload(client_for(owner), template, b"brochure", "brochure.pdf")

    assert answer.status_code == 403
    assert answer.json()["code"] == "permission_denied"
    assert "is_staff" in answer.json()["detail"]
    assert_nothing_stored()


# --- Who may attach: the permission matrix ---------------------------------------------


def test_anonymous_requests_are_refused_with_401(draft):
    attachment, _ = attachment_store(owner=draft, source=b"x", filename="x.txt")
    anonymous = client_for(None)

    answers = [
        anonymous.get(LIST),
        anonymous.get(detail(attachment)),
        anonymous.get(content(attachment)),
        anonymous.delete(detail(attachment)),
        upload(anonymous, draft, b"more", "more.txt"),
        post_json(anonymous, {"object_type": "email", "object_id": draft.pk, "body": "eA=="}),
    ]

    assert [a.status_code for a in answers] == [401] * 6
    assert ActivityMimeAttachment.objects.count() == 1


def test_a_queue_member_attaches_to_the_queue_draft(teammate, queue_draft):
    answer = upload(client_for(teammate), queue_draft, b"team file", "team.txt")

    assert answer.status_code == 201, answer.content
    assert queue_draft.attachments.get().filename == "team.txt"


def test_an_email_the_user_may_not_see_is_404_and_nothing_is_stored(outsider, draft, queue_draft):
    client = client_for(outsider)

    answers = [
        upload(client, draft, b"x", "x.txt"),
        upload(client, queue_draft, b"x", "x.txt"),
        post_json(
            client,
            {"object_type": "email", "object_id": draft.pk, "filename": "a", "body": "eA=="},
        ),
        upload(client, EmailFactory.build(pk=999999), b"x", "x.txt"),
    ]

    assert [a.status_code for a in answers] == [404] * 4
    assert answers[0].json()["code"] == "not_found"
    assert_nothing_stored()


def test_a_party_who_sees_the_email_but_may_not_act_for_its_sender_is_403(draft, outsider):
    EmailParty.objects.create(email=draft, role="cc", address="charlie@x.com", user=outsider)

    answer = upload(client_for(outsider), draft, b"x", "x.txt")

    assert answer.status_code == 403
    assert answer.json()["code"] == "sender_not_allowed"
    assert_nothing_stored()


def test_staff_see_every_draft_but_may_not_change_another_users_files(staff, draft):
    answer = upload(client_for(staff), draft, b"x", "x.txt")

    assert answer.status_code == 403
    assert answer.json()["code"] == "sender_not_allowed"
    assert "may not send as the user alice" in answer.json()["detail"]
    assert_nothing_stored()


@pytest.mark.parametrize("status", NOT_EDITABLE_STATUSES)
def test_an_email_that_is_not_a_draft_takes_no_attachment(owner, status):
    email = EmailFactory(sender_user=owner, status=status)

    answer = upload(client_for(owner), email, b"late", "late.txt")

    assert answer.status_code == 409
    assert answer.json()["code"] == "invalid_status"
    assert answer.json()["status"] == status
    assert_nothing_stored()


def test_an_unknown_template_is_404(staff):
    answer = upload(client_for(staff), TemplateFactory.build(pk=999999), b"x", "x.txt")

    assert answer.status_code == 404


# --- JSON: base64 --------------------------------------------------------------------


def test_a_base64_body_is_stored_like_an_upload(owner, draft):
    data = bytes(range(256)) * 40

    answer = post_json(
        client_for(owner),
        {
            "object_type": "email",
            "object_id": draft.pk,
            "filename": "table.bin",
            "mime_type": "application/x-table",
            "body": b64(data),
        },
    )

    assert answer.status_code == 201, answer.content
    assert answer.json()["reused"] is False
    assert answer.json()["size"] == len(data)
    assert answer.json()["mime_type"] == "application/x-table"
    attachment = ActivityMimeAttachment.objects.get()
    assert default_storage.open(attachment.blob.file.name).read() == data


def test_a_base64_body_with_line_breaks_and_a_guessed_type(owner, draft):
    data = b"line-wrapped base64, as MIME writes it " * 20

    answer = post_json(
        client_for(owner),
        {
            "object_type": "email",
            "object_id": draft.pk,
            "filename": "../../etc/report.txt",
            "body": base64.encodebytes(data).decode("ascii"),
        },
    )

    assert answer.status_code == 201, answer.content
    assert (answer.json()["filename"], answer.json()["mime_type"]) == ("report.txt", "text/plain")
    assert answer.json()["attachment_id"] == sha(data)


@pytest.mark.parametrize(
    "body",
    ["not base64!", "QUJD=", "QQ==QUJD", "QUJDRA", "QUJD\u00e9", "QQ=A"],
)
def test_invalid_base64_is_400_and_nothing_is_stored(owner, draft, body):
    answer = post_json(
        client_for(owner),
        {"object_type": "email", "object_id": draft.pk, "filename": "a.txt", "body": body},
    )

    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_base64"
    assert answer.json()["detail"].startswith("body is not valid base64")
    assert_nothing_stored()


def test_a_base64_body_needs_a_filename(owner, draft):
    answer = post_json(
        client_for(owner), {"object_type": "email", "object_id": draft.pk, "body": "eA=="}
    )

    assert answer.status_code == 400
    assert "filename" in answer.json()
    assert_nothing_stored()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"object_type": "account", "object_id": 1, "filename": "a", "body": ""}, "object_type"),
        ({"object_type": "email", "object_id": "x", "filename": "a", "body": ""}, "object_id"),
        ({"object_type": "email", "object_id": 0, "filename": "a", "body": ""}, "object_id"),
        ({"object_type": "email", "object_id": 10**30, "filename": "a", "body": ""}, "object_id"),
        ({"object_type": "email", "object_id": 1, "filename": "a", "body": 5}, "body"),
        ({"object_type": "email", "object_id": 1, "filename": "a\x00b", "body": ""}, "filename"),
        ({"object_type": "email", "object_id": 1}, "non_field_errors"),
        (
            {
                "object_type": "email",
                "object_id": 1,
                "filename": "a",
                "body": "",
                "attachment_id": "0",
            },
            "non_field_errors",
        ),
    ],
)
def test_invalid_json_fields_are_400_naming_the_field(owner, body, field):
    answer = post_json(client_for(owner), body)

    assert answer.status_code == 400
    assert field in answer.json()
    assert_nothing_stored()


def test_a_list_instead_of_an_object_is_400(owner):
    answer = client_for(owner).post(LIST, json.dumps([1, 2]), content_type="application/json")

    assert answer.status_code == 400


def test_malformed_json_is_400(owner):
    answer = client_for(owner).post(LIST, '{"object_type": ', content_type="application/json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "parse_error"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_an_unsupported_media_type_is_415(owner, draft, content_type):
    answer = client_for(owner).post(LIST, "object_type=email", content_type=content_type)

    assert answer.status_code == 415
    assert answer.json()["code"] == "unsupported_media_type"
    assert_nothing_stored()


# --- JSON: reuse stored bytes by their id ------------------------------------------------


def test_reuse_by_attachment_id_links_the_same_blob_and_takes_its_name(owner, draft, staff):
    template = TemplateFactory()
    data = b"terms and conditions"
    earlier, _ = attachment_store(owner=template, source=data, filename="terms.pdf")

    answer = post_json(
        client_for(owner),
        {"object_type": "email", "object_id": draft.pk, "attachment_id": sha(data).upper()},
    )

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["reused"], body["attachment_id"], body["size"]) == (True, sha(data), len(data))
    assert (body["filename"], body["mime_type"]) == ("terms.pdf", "application/pdf")
    assert AttachmentBlob.objects.count() == 1
    assert draft.attachments.get().blob_id == earlier.blob_id


def test_reuse_by_attachment_id_with_a_new_name(owner, draft):
    data = b"price list"
    attachment_store(owner=draft, source=data, filename="prices.txt")

    answer = post_json(
        client_for(owner),
        {
            "object_type": "email",
            "object_id": draft.pk,
            "attachment_id": sha(data),
            "filename": "../prices-2026.csv",
            "subject": "Prices",
        },
    )

    assert answer.status_code == 201, answer.content
    assert (answer.json()["filename"], answer.json()["mime_type"]) == (
        "prices-2026.csv",
        "text/csv",
    )
    assert answer.json()["subject"] == "Prices"
    assert draft.attachments.count() == 2
    assert AttachmentBlob.objects.count() == 1


def test_an_unknown_attachment_id_is_400(owner, draft):
    answer = post_json(
        client_for(owner),
        {"object_type": "email", "object_id": draft.pk, "attachment_id": "ab" * 32},
    )

    assert answer.status_code == 400
    assert answer.json()["code"] == "unknown_attachment_id"
    assert_nothing_stored()


def test_bytes_on_an_email_the_user_cannot_see_are_not_reusable_by_id(owner, draft, outsider):
    data = b"confidential"
    attachment_store(owner=draft, source=data, filename="secret.txt")
    own = EmailFactory(sender_user=outsider)

    answer = post_json(
        client_for(outsider),
        {"object_type": "email", "object_id": own.pk, "attachment_id": sha(data)},
    )

    assert answer.status_code == 400
    assert answer.json()["code"] == "unknown_attachment_id"
    assert own.attachments.count() == 0
    assert ActivityMimeAttachment.objects.count() == 1


def test_reuse_on_a_sent_email_is_409(owner):
    data = b"stored"
    attachment_store(owner=TemplateFactory(), source=data, filename="x.txt")
    sent = EmailFactory(sender_user=owner, status=EmailStatus.SENT)

    answer = post_json(
        client_for(owner),
        {"object_type": "email", "object_id": sent.pk, "attachment_id": sha(data)},
    )

    assert answer.status_code == 409
    assert answer.json()["status"] == "sent"
    assert sent.attachments.count() == 0


# --- Size limit: before and while streaming --------------------------------------------


def test_an_upload_one_byte_over_the_limit_is_413_and_nothing_is_stored(owner, draft):
    set_limit(1000)
    # Within the multipart allowance: it is the streaming count that refuses it.
    answer = upload(client_for(owner), draft, b"x" * 1001, "big.bin")

    assert answer.status_code == 413
    assert answer.json()["code"] == "attachment_too_large"
    # The upload handler's words, not the blob store's: refused while streaming.
    assert answer.json()["detail"] == (
        "the file is larger than the limit of 1000 bytes (Organization.max_attachment_bytes)"
    )
    assert_nothing_stored()


def test_an_upload_exactly_at_the_limit_is_accepted(owner, draft):
    set_limit(1000)

    answer = upload(client_for(owner), draft, b"x" * 1000, "fits.bin")

    assert answer.status_code == 201, answer.content
    assert answer.json()["size"] == 1000


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(owner, draft):
    set_limit(1000)
    body = encode_multipart(
        BOUNDARY, {"object_type": "email", "object_id": str(draft.pk), "file": io.BytesIO(b"x")}
    )

    # The test client's payload raises if read past its end: a refusal proves it unread.
    answer = client_for(owner).generic(
        "POST",
        LIST,
        body,
        content_type=MULTIPART_CONTENT,
        CONTENT_LENGTH=str(1000 + MULTIPART_OVERHEAD + 1),
    )

    assert answer.status_code == 413
    assert answer.json()["code"] == "attachment_too_large"
    assert_nothing_stored()


def test_a_base64_body_over_the_limit_is_413_and_nothing_is_stored(owner, draft):
    set_limit(1000)

    answer = post_json(
        client_for(owner),
        {"object_type": "email", "object_id": draft.pk, "filename": "a", "body": b64(b"x" * 1001)},
    )

    assert answer.status_code == 413
    assert answer.json()["code"] == "attachment_too_large"
    assert_nothing_stored()


def test_a_json_body_longer_than_base64_of_the_limit_is_413_unread(owner, draft):
    set_limit(1000)
    body = json.dumps({"object_type": "email", "object_id": draft.pk, "filename": "a", "body": ""})

    answer = client_for(owner).generic(
        "POST",
        LIST,
        body,
        content_type="application/json",
        CONTENT_LENGTH=str(10**9),
    )

    assert answer.status_code == 413
    assert answer.json()["code"] == "attachment_too_large"
    assert_nothing_stored()


def test_a_json_body_over_djangos_memory_limit_is_413_pointing_to_multipart(owner, draft, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000

    answer = post_json(
        client_for(owner),
        {"object_type": "email", "object_id": draft.pk, "filename": "a", "body": b64(b"x" * 3000)},
    )

    assert answer.status_code == 413
    assert "multipart/form-data" in answer.json()["detail"]
    assert_nothing_stored()


def test_session_upload_over_the_limit_is_refused_while_csrf_reads_the_form(owner, draft):
    set_limit(1000)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    token = _get_new_csrf_string()
    client.cookies[settings.CSRF_COOKIE_NAME] = token

    too_big = upload(client, draft, b"x" * 1001, "big.bin", extra={"HTTP_X_CSRFTOKEN": token})
    fits = upload(client, draft, b"x" * 10, "small.bin", extra={"HTTP_X_CSRFTOKEN": token})

    assert too_big.status_code == 413
    assert too_big.json()["code"] == "attachment_too_large"
    assert "Organization.max_attachment_bytes" in too_big.json()["detail"]
    assert fits.status_code == 201, fits.content
    assert [a.filename for a in ActivityMimeAttachment.objects.all()] == ["small.bin"]
    assert AttachmentBlob.objects.count() == 1


def test_session_upload_without_the_csrf_token_is_403(owner, draft):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)

    answer = upload(client, draft, b"x", "x.txt")

    assert answer.status_code == 403
    assert "CSRF" in answer.json()["detail"]
    assert_nothing_stored()


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.consumed = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def test_the_upload_handler_stops_reading_a_body_as_soon_as_it_passes_the_limit():
    limit = 100_000
    body = encode_multipart(BOUNDARY, {"file": SimpleUploadedFile("huge.bin", b"x" * 10_000_000)})
    stream = CountingStream(body)
    # A small declared length gets past the early check; the count must still stop it.
    meta = {"CONTENT_TYPE": MULTIPART_CONTENT, "CONTENT_LENGTH": "1000"}
    handlers = [SizeLimitUploadHandler(limit=lambda: limit)]

    with pytest.raises(AttachmentTooLarge):
        MultiPartParser(meta, stream, handlers).parse()

    assert handlers[0].received > limit
    assert stream.consumed < limit + 4 * 64 * 1024 < len(body)


def test_the_upload_handler_refuses_a_declared_length_over_the_limit_without_reading():
    stream = CountingStream(b"--never read")
    meta = {"CONTENT_TYPE": MULTIPART_CONTENT, "CONTENT_LENGTH": str(10**9)}

    with pytest.raises(AttachmentTooLarge):
        MultiPartParser(meta, stream, [SizeLimitUploadHandler(limit=lambda: 1000)]).parse()

    assert stream.consumed == 0


def test_base64_is_decoded_in_slices_across_their_boundaries():
    data = bytes(range(256)) * 100
    text = base64.encodebytes(data).decode("ascii")

    chunks = list(base64_chunks(text, slice_chars=1001))

    assert len(chunks) > 10
    assert b"".join(chunks) == data


def test_base64_padding_in_the_middle_is_refused():
    with pytest.raises(ValidationFailed):
        list(base64_chunks("QQ==" + "QUJD" * 10, slice_chars=4))


# --- Idempotency ---------------------------------------------------------------------


def test_the_same_idempotency_key_uploads_once(owner, draft):
    client = client_for(owner)

    first = upload(client, draft, b"once", "once.txt", extra={"HTTP_IDEMPOTENCY_KEY": "up-1"})
    again = upload(client, draft, b"once", "once.txt", extra={"HTTP_IDEMPOTENCY_KEY": "up-1"})

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert draft.attachments.count() == 1


# --- Reading: list, detail -------------------------------------------------------------


def test_list_shows_template_files_and_those_of_visible_emails_only(
    owner, teammate, outsider, staff, draft, queue_draft
):
    on_draft, _ = attachment_store(owner=draft, source=b"a", filename="a.txt")
    on_queue, _ = attachment_store(owner=queue_draft, source=b"b", filename="b.txt")
    on_template, _ = attachment_store(owner=TemplateFactory(), source=b"c", filename="c.txt")

    def ids(user, query: str = "") -> list[int]:
        answer = client_for(user).get(LIST + query)
        assert answer.status_code == 200, answer.content
        return [a["id"] for a in answer.json()["results"]]

    assert ids(owner) == [on_draft.pk, on_template.pk]
    assert ids(teammate) == [on_queue.pk, on_template.pk]
    assert ids(outsider) == [on_template.pk]
    assert ids(staff) == [on_draft.pk, on_queue.pk, on_template.pk]
    assert ids(staff, "?object_type=email") == [on_draft.pk, on_queue.pk]
    assert ids(staff, f"?object_type=email&object_id={queue_draft.pk}") == [on_queue.pk]
    assert ids(staff, "?object_type=template") == [on_template.pk]
    assert ids(outsider, f"?object_type=email&object_id={draft.pk}") == []
    assert ids(staff, "?search=b.txt") == [on_queue.pk]


def test_list_refuses_invalid_filters(staff):
    client = client_for(staff)

    assert client.get(LIST + "?object_type=account").status_code == 400
    assert client.get(LIST + "?object_id=abc").status_code == 400


def test_list_query_count_does_not_grow_with_page_size(owner):
    for n in range(30):
        email = EmailFactory(sender_user=owner)
        attachment_store(owner=email, source=b"%d" % n, filename=f"{n}.txt")
        attachment_store(owner=email, source=b"shared", filename=f"shared{n}.txt")
    client = client_for(owner)
    client.get(LIST)

    small, small_count = count_queries(lambda: client.get(LIST + "?page_size=5"))
    large, large_count = count_queries(lambda: client.get(LIST + "?page_size=50"))

    assert len(small.json()["results"]) == 5 and len(large.json()["results"]) == 50
    assert small_count == large_count


def test_detail_of_an_attachment_the_user_may_not_see_is_404(outsider, owner, draft):
    attachment, _ = attachment_store(owner=draft, source=b"private", filename="p.txt")

    assert client_for(outsider).get(detail(attachment)).status_code == 404
    assert client_for(outsider).get(content(attachment)).status_code == 404
    answer = client_for(owner).get(detail(attachment))
    assert answer.status_code == 200
    assert answer.json()["filename"] == "p.txt"
    assert "reused" not in answer.json()


# --- The bytes -------------------------------------------------------------------------


def read(response) -> bytes:
    return b"".join(response.streaming_content)


def test_content_streams_the_bytes_with_their_type_and_a_download_disposition(owner, draft):
    data = b"<html><script>alert(1)</script></html>"
    attachment, _ = attachment_store(
        owner=draft, source=data, filename="page.html", mime_type="text/html"
    )

    answer = client_for(owner).get(content(attachment))

    assert answer.status_code == 200
    assert read(answer) == data
    assert answer["Content-Type"] == "text/html"
    assert answer["Content-Disposition"] == 'attachment; filename="page.html"'
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in answer["Content-Security-Policy"]
    assert answer["Content-Length"] == str(len(data))
    assert answer["ETag"] == f'"{sha(data)}"'


@pytest.mark.parametrize(
    "filename, expected",
    [
        ("rapport.pdf", 'attachment; filename="rapport.pdf"'),
        (
            "Årsrapport 2026.pdf",
            "attachment; filename=\"Arsrapport 2026.pdf\"; filename*=UTF-8''%C3%85rsrapport%202026.pdf",
        ),
        (
            "отчёт.pdf",
            "attachment; filename=\"attachment.pdf\"; filename*=UTF-8''"
            "%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf",
        ),
        (
            'say "hi".txt',
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
        ),
        ("dir\\a.txt", 'attachment; filename="a.txt"'),
        ("a\r\nSet-Cookie: b.txt", 'attachment; filename="aSet-Cookie: b.txt"'),
        ("100%.txt", "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
    ],
)
def test_content_disposition_is_safe_for_any_filename(owner, draft, filename, expected):
    attachment, _ = attachment_store(owner=draft, source=b"x", filename="x.bin")
    # Stored directly, as an older version or the admin might have: served safely anyway.
    ActivityMimeAttachment.objects.filter(pk=attachment.pk).update(filename=filename)

    answer = client_for(owner).get(content(attachment))

    assert answer.status_code == 200
    assert answer["Content-Disposition"] == expected


def test_content_ignores_the_accept_header(owner, draft):
    attachment, _ = attachment_store(owner=draft, source=b"%PDF", filename="a.pdf")

    answer = client_for(owner).get(content(attachment), HTTP_ACCEPT="application/pdf")

    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/pdf"
    assert read(answer) == b"%PDF"


def test_content_whose_stored_file_is_missing_is_404(owner, draft):
    attachment, _ = attachment_store(owner=draft, source=b"gone", filename="gone.txt")
    default_storage.delete(attachment.blob.file.name)

    answer = client_for(owner).get(content(attachment))

    assert answer.status_code == 404
    assert answer.json()["code"] == "content_missing"


# --- Delete ----------------------------------------------------------------------------


def test_owner_removes_an_attachment_from_a_draft_and_the_blob_stays(owner, draft):
    attachment, _ = attachment_store(owner=draft, source=b"bye", filename="bye.txt")

    answer = client_for(owner).delete(detail(attachment))

    assert answer.status_code == 204
    assert not ActivityMimeAttachment.objects.exists()
    blob = AttachmentBlob.objects.get()
    assert default_storage.exists(blob.file.name)


def test_removing_from_a_sent_email_is_409_and_keeps_it(owner):
    email = EmailFactory(sender_user=owner)
    attachment, _ = attachment_store(owner=email, source=b"kept", filename="kept.txt")
    email.status = EmailStatus.SENT
    email.save()

    answer = client_for(owner).delete(detail(attachment))

    assert answer.status_code == 409
    assert answer.json()["status"] == "sent"
    assert ActivityMimeAttachment.objects.filter(pk=attachment.pk).exists()


def test_delete_permission_matrix(owner, teammate, outsider, staff, queue_draft):
    on_queue, _ = attachment_store(owner=queue_draft, source=b"q", filename="q.txt")
    on_template, _ = attachment_store(owner=TemplateFactory(), source=b"t", filename="t.txt")

    assert client_for(outsider).delete(detail(on_queue)).status_code == 404
    assert client_for(staff).delete(detail(on_queue)).status_code == 403
    refused = client_for(owner).delete(detail(on_template))
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert ActivityMimeAttachment.objects.count() == 2

    assert client_for(teammate).delete(detail(on_queue)).status_code == 204
    assert client_for(staff).delete(detail(on_template)).status_code == 204
    assert not ActivityMimeAttachment.objects.exists()
    assert AttachmentBlob.objects.count() == 2


def test_an_attachment_id_that_is_not_a_number_is_a_json_404(owner):
    answer = client_for(owner).get("/api/v1/attachments/0.5/content/")

    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
