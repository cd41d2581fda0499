"""me/messages/{id}/attachments: add, list, get (with contentBytes and $value), remove."""

from __future__ import annotations

import base64

import pytest

from activities.models import ActivityMimeAttachment, EmailStatus
from compat.graph import ids
from tests.factories import EmailFactory

from .graph_support import BASE, graph_client, graph_error

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 \x00\xff binary"
FILE = {
    "@odata.type": "#microsoft.graph.fileAttachment",
    "name": "terms.pdf",
    "contentType": "application/pdf",
    "contentBytes": base64.b64encode(PDF).decode(),
}


def _url(email, *rest):
    return "/".join([f"{BASE}/me/messages/{ids.message_id(email.pk)}/attachments", *rest])


def test_adding_listing_getting_and_removing_an_attachment(owner):
    email = EmailFactory(sender_user=owner)
    client = graph_client(owner)

    created = client.post(_url(email), FILE, format="json")

    assert created.status_code == 201
    resource = created.json()
    attachment = ActivityMimeAttachment.objects.get()
    assert resource == {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": ids.attachment_id(attachment.pk),
        "lastModifiedDateTime": resource["lastModifiedDateTime"],
        "name": "terms.pdf",
        "contentType": "application/pdf",
        "size": len(PDF),
        "isInline": False,
        "contentId": None,
        "contentLocation": None,
    }
    listed = client.get(_url(email)).json()["value"]
    assert [a["id"] for a in listed] == [resource["id"]] and "contentBytes" not in listed[0]
    one = client.get(_url(email, resource["id"])).json()
    assert base64.b64decode(one["contentBytes"]) == PDF
    raw = client.get(_url(email, resource["id"], "$value"))
    assert raw.status_code == 200 and b"".join(raw.streaming_content) == PDF
    assert raw["Content-Type"] == "application/pdf"
    message = client.get(f"{BASE}/me/messages/{ids.message_id(email.pk)}").json()
    assert message["hasAttachments"] is True

    assert client.delete(_url(email, resource["id"])).status_code == 204
    assert not ActivityMimeAttachment.objects.exists()


def test_a_sent_message_takes_no_attachment(owner):
    email = EmailFactory(sender_user=owner, status=EmailStatus.SENT, state="completed")

    assert graph_error(graph_client(owner).post(_url(email), FILE, format="json"))[0] == 409
    assert not ActivityMimeAttachment.objects.exists()


def test_a_teammate_may_not_attach_to_the_owners_draft(owner, teammate, team_queue):
    own = EmailFactory(sender_user=owner)
    queue_draft = EmailFactory(sender_user=None, sender_queue=team_queue)

    assert graph_client(teammate).post(_url(own), FILE, format="json").status_code == 404
    assert graph_client(teammate).post(_url(queue_draft), FILE, format="json").status_code == 201
    assert ActivityMimeAttachment.objects.get().email == queue_draft


def test_an_attachment_of_another_message_is_not_found(owner):
    one, other = EmailFactory(sender_user=owner), EmailFactory(sender_user=owner)
    client = graph_client(owner)
    attachment_id = client.post(_url(one), FILE, format="json").json()["id"]

    assert graph_error(client.get(_url(other, attachment_id)))[:2] == (404, "ErrorItemNotFound")
    assert graph_error(client.get(_url(one, "AAMkbm9wZQ")))[:2] == (400, "ErrorInvalidIdMalformed")


def test_an_empty_or_broken_file_is_refused(owner):
    email = EmailFactory(sender_user=owner)
    client = graph_client(owner)

    empty = client.post(_url(email), {**FILE, "contentBytes": ""}, format="json")
    broken = client.post(_url(email), {**FILE, "contentBytes": "@@@@"}, format="json")
    missing = client.post(_url(email), {"name": "x.txt"}, format="json")

    assert graph_error(empty)[0] == 400 and graph_error(broken)[0] == 400
    assert "contentBytes is required" in graph_error(missing)[2]
    assert not ActivityMimeAttachment.objects.exists()


def test_an_attachment_over_the_limit_is_too_large(owner, org):
    org.max_attachment_bytes = 10
    org.save()
    email = EmailFactory(sender_user=owner)

    response = graph_client(owner).post(_url(email), FILE, format="json")

    assert graph_error(response)[:2] == (413, "ErrorMessageSizeExceeded")


def test_an_outsider_sees_no_attachment_of_the_owners(owner, outsider):
    email = EmailFactory(sender_user=owner)
    attachment_id = graph_client(owner).post(_url(email), FILE, format="json").json()["id"]
    client = graph_client(outsider)

    assert graph_error(client.get(_url(email)))[:2] == (404, "ErrorItemNotFound")
    assert graph_error(client.get(_url(email, attachment_id)))[:2] == (404, "ErrorItemNotFound")
    assert client.get(_url(email, attachment_id, "$value")).status_code == 404
    assert client.delete(_url(email, attachment_id)).status_code == 404
    assert ActivityMimeAttachment.objects.count() == 1
