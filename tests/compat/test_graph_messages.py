"""me/messages: create a draft, list, get, update, delete, send; mailFolders."""

from __future__ import annotations

import pytest

from activities.models import Direction, Email, EmailStatus
from compat.graph import ids
from tests.api import count_queries
from tests.factories import EmailFactory, EmailPartyFactory

from .graph_support import BASE, graph_client, graph_error

pytestmark = pytest.mark.django_db

DOCS_DRAFT = {
    "subject": "Did you see last night's game?",
    "importance": "Low",
    "body": {"contentType": "HTML", "content": "They were <b>awesome</b>!"},
    "toRecipients": [{"emailAddress": {"address": "AdeleV@contoso.onmicrosoft.com"}}],
}


def _draft(owner, **kwargs) -> Email:
    response = graph_client(owner).post(
        f"{BASE}/me/messages", {**DOCS_DRAFT, **kwargs}, format="json"
    )
    assert response.status_code == 201, response.content
    return Email.objects.get(pk=ids.message_pk(response.json()["id"]))


def test_creating_the_documented_draft_answers_the_message_resource(owner):
    response = graph_client(owner).post(f"{BASE}/me/messages", DOCS_DRAFT, format="json")

    assert response.status_code == 201
    message = response.json()
    email = Email.objects.get()
    assert message["id"] == ids.message_id(email.pk)
    assert message["isDraft"] is True and message["sentDateTime"] is None
    assert message["importance"] == "low"
    assert message["body"] == {"contentType": "html", "content": "They were <b>awesome</b>!"}
    assert (
        message["from"]
        == message["sender"]
        == {"emailAddress": {"name": "Alice Archer", "address": "alice@staff.example.com"}}
    )
    assert message["toRecipients"] == [
        {
            "emailAddress": {
                "name": "AdeleV@contoso.onmicrosoft.com",
                "address": "AdeleV@contoso.onmicrosoft.com",
            }
        }
    ]
    assert message["ccRecipients"] == message["bccRecipients"] == message["replyTo"] == []
    assert message["hasAttachments"] is False and message["internetMessageId"] is None
    assert message["parentFolderId"] == "drafts"
    assert message["webLink"].endswith(f"/mail/{email.pk}/")
    assert message["createdDateTime"].endswith("Z")
    assert email.status == EmailStatus.DRAFT and email.sender_user == owner


def test_a_message_id_is_stable_and_opaque(owner):
    email = _draft(owner)
    assert ids.message_id(email.pk) == ids.message_id(email.pk)
    assert ids.message_id(email.pk).startswith("AAMk")
    assert ids.message_pk(ids.message_id(email.pk)) == email.pk


def test_listing_pages_with_top_and_next_link_and_selects(owner):
    emails = [EmailFactory(sender_user=owner, subject=f"S{i}") for i in range(3)]
    client = graph_client(owner)

    first = client.get(f"{BASE}/me/messages", {"$top": 2, "$select": "subject,isDraft"}).json()

    assert [m["subject"] for m in first["value"]] == ["S2", "S1"]
    assert set(first["value"][0]) == {"id", "subject", "isDraft"}
    second = client.get(first["@odata.nextLink"]).json()
    assert [m["subject"] for m in second["value"]] == ["S0"]
    assert second["value"][0]["id"] == ids.message_id(emails[0].pk)
    assert "@odata.nextLink" not in second


def test_listing_filters_orders_and_counts(owner):
    EmailFactory(sender_user=owner, subject="Draft b")
    EmailFactory(sender_user=owner, subject="Sent a", status=EmailStatus.SENT, state="completed")
    client = graph_client(owner)

    drafts = client.get(f"{BASE}/me/messages", {"$filter": "isDraft eq true"}).json()
    sent = client.get(
        f"{BASE}/me/messages",
        {"$filter": "isDraft eq false and subject eq 'Sent a'", "$count": "true"},
    ).json()
    ordered = client.get(f"{BASE}/me/messages", {"$orderby": "subject asc"}).json()

    assert [m["subject"] for m in drafts["value"]] == ["Draft b"]
    assert [m["subject"] for m in sent["value"]] == ["Sent a"] and sent["@odata.count"] == 1
    assert [m["subject"] for m in ordered["value"]] == ["Draft b", "Sent a"]


@pytest.mark.parametrize(
    "params",
    [
        {"$top": "-1"},
        {"$top": "many"},
        {"$skip": "1e3"},
        {"$select": "subject,nope"},
        {"$orderby": "color desc"},
        {"$filter": "subject eq"},
        {"$filter": "createdDateTime ge 'yesterday'"},
        {"$filter": "isDraft gt true"},
        {"$filter": "sentDateTime ge 0001-01-01T00:00:00+23:59"},
        {"$filter": "sentDateTime ge 2026-13-01T00:00:00Z"},
        {"$filter": "subject eq 'a\x00b'"},
        {"$expand": "attachments"},
    ],
)
def test_bad_query_options_are_bad_requests(owner, params):
    assert graph_error(graph_client(owner).get(f"{BASE}/me/messages", params))[:2] == (
        400,
        "BadRequest",
    )


def test_a_date_filter_with_a_far_offset_compares_in_utc(owner):
    EmailFactory(sender_user=owner, subject="now")

    response = graph_client(owner).get(
        f"{BASE}/me/messages", {"$filter": "createdDateTime ge 2000-01-01T00:00:00+21:58"}
    )

    assert [m["subject"] for m in response.json()["value"]] == ["now"]


def test_folders_list_drafts_and_sent_items(owner):
    EmailFactory(sender_user=owner, subject="draft")
    EmailFactory(sender_user=owner, subject="sent", status=EmailStatus.SENT, state="completed")
    EmailFactory(
        sender_user=owner, subject="queued", status=EmailStatus.PENDING_SEND, state="completed"
    )
    EmailFactory(
        sender_user=owner, subject="in", direction=Direction.INCOMING, status=EmailStatus.RECEIVED
    )
    client = graph_client(owner)

    def subjects(folder):
        return sorted(
            m["subject"]
            for m in client.get(f"{BASE}/me/mailFolders/{folder}/messages").json()["value"]
        )

    assert subjects("drafts") == ["draft"]
    assert subjects("SentItems") == ["queued", "sent"]
    assert subjects("inbox") == ["in"]
    assert graph_error(client.get(f"{BASE}/me/mailFolders/junk/messages"))[:2] == (
        404,
        "ErrorItemNotFound",
    )


def test_who_sees_a_message_is_as_in_the_api(owner, teammate, outsider, staff, team_queue):
    own = EmailFactory(sender_user=owner)
    queue_mail = EmailFactory(sender_user=None, sender_queue=team_queue)

    def listed(user):
        return {m["id"] for m in graph_client(user).get(f"{BASE}/me/messages").json()["value"]}

    assert listed(owner) == {ids.message_id(own.pk), ids.message_id(queue_mail.pk)}
    assert listed(teammate) == {ids.message_id(queue_mail.pk)}
    assert listed(outsider) == set()
    assert listed(staff) == {ids.message_id(own.pk), ids.message_id(queue_mail.pk)}
    assert (
        graph_client(teammate).get(f"{BASE}/me/messages/{ids.message_id(own.pk)}").status_code
        == 404
    )
    assert graph_error(graph_client(outsider).get(f"{BASE}/me/messages/{ids.message_id(own.pk)}"))[
        :2
    ] == (
        404,
        "ErrorItemNotFound",
    )


def test_getting_one_message_with_select_and_headers(owner):
    email = _draft(owner)

    message = (
        graph_client(owner)
        .get(
            f"{BASE}/me/messages/{ids.message_id(email.pk)}",
            {"$select": "subject,internetMessageHeaders"},
        )
        .json()
    )

    assert message == {
        "id": ids.message_id(email.pk),
        "subject": "Did you see last night's game?",
        "internetMessageHeaders": [],
    }


@pytest.mark.parametrize("bad", ["123", "AAMk!!", "AAMkYXR0YWNobWVudDox", "AAMk" + "A" * 100])
def test_a_malformed_id_is_error_invalid_id_malformed(owner, bad):
    status, code, message = graph_error(graph_client(owner).get(f"{BASE}/me/messages/{bad}"))
    assert (status, code, message) == (400, "ErrorInvalidIdMalformed", "Id is malformed.")


def test_an_unknown_id_is_error_item_not_found(owner):
    response = graph_client(owner).get(f"{BASE}/me/messages/{ids.message_id(2**62)}")
    assert graph_error(response)[:2] == (404, "ErrorItemNotFound")


def test_patching_a_draft_changes_it(owner):
    email = _draft(owner)

    response = graph_client(owner).patch(
        f"{BASE}/me/messages/{ids.message_id(email.pk)}",
        {
            "subject": "Rematch?",
            "body": {"contentType": "Text", "content": "Same time"},
            "ccRecipients": [{"emailAddress": {"address": "cc@example.com", "name": "Cee"}}],
            "isRead": True,
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["subject"] == "Rematch?"
    email.refresh_from_db()
    assert (email.subject, email.body_text, email.body_html) == ("Rematch?", "Same time", "")
    assert [(p.address, p.name) for p in email.parties.filter(role="cc")] == [
        ("cc@example.com", "Cee")
    ]
    assert email.parties.filter(role="to").count() == 1


def test_patching_a_sent_message_is_refused_and_changes_nothing(owner):
    email = EmailFactory(
        sender_user=owner, status=EmailStatus.SENT, state="completed", subject="Old"
    )

    response = graph_client(owner).patch(
        f"{BASE}/me/messages/{ids.message_id(email.pk)}", {"subject": "New"}, format="json"
    )

    status, code, message = graph_error(response)
    assert status == 409 and "sent" in message
    email.refresh_from_db()
    assert email.subject == "Old"


def test_patching_only_outlook_state_on_a_sent_message_is_a_no_op(owner):
    email = EmailFactory(sender_user=owner, status=EmailStatus.SENT, state="completed")

    response = graph_client(owner).patch(
        f"{BASE}/me/messages/{ids.message_id(email.pk)}",
        {"isRead": True, "categories": []},
        format="json",
    )

    assert response.status_code == 200


def test_a_teammate_may_not_patch_the_owners_queue_draft_but_may_not_see_the_owners_own(
    owner, teammate, team_queue
):
    own = _draft(owner)
    queue_draft = EmailFactory(sender_user=None, sender_queue=team_queue, subject="Q")

    mine = graph_client(teammate).patch(
        f"{BASE}/me/messages/{ids.message_id(own.pk)}", {"subject": "x"}, format="json"
    )
    ours = graph_client(teammate).patch(
        f"{BASE}/me/messages/{ids.message_id(queue_draft.pk)}", {"subject": "Q2"}, format="json"
    )

    assert mine.status_code == 404
    assert ours.status_code == 200
    queue_draft.refresh_from_db()
    assert queue_draft.subject == "Q2"


def test_deleting_a_draft_removes_it(owner):
    email = _draft(owner)

    response = graph_client(owner).delete(f"{BASE}/me/messages/{ids.message_id(email.pk)}")

    assert response.status_code == 204
    assert not Email.objects.exists()


def test_deleting_a_queued_message_is_refused(owner):
    email = EmailFactory(sender_user=owner, status=EmailStatus.PENDING_SEND, state="completed")

    response = graph_client(owner).delete(f"{BASE}/me/messages/{ids.message_id(email.pk)}")

    assert graph_error(response)[0] == 409
    assert Email.objects.filter(pk=email.pk).exists()


def test_sending_a_draft_queues_it(owner):
    email = _draft(owner)

    response = graph_client(owner).post(f"{BASE}/me/messages/{ids.message_id(email.pk)}/send")

    assert response.status_code == 202 and response.content == b""
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND and email.message_id
    message = graph_client(owner).get(f"{BASE}/me/messages/{ids.message_id(email.pk)}").json()
    assert message["isDraft"] is False and message["internetMessageId"] == email.message_id
    assert message["parentFolderId"] == "sentitems"


def test_sending_twice_is_refused_the_second_time(owner):
    email = _draft(owner)
    client = graph_client(owner)
    client.post(f"{BASE}/me/messages/{ids.message_id(email.pk)}/send")

    response = client.post(f"{BASE}/me/messages/{ids.message_id(email.pk)}/send")

    status, code, message = graph_error(response)
    assert status == 409 and "pending_send" in message
    assert response.json()["error"]["innerError"]["code"] == "invalid_status"


def test_an_outsider_cannot_send_someone_elses_draft(owner, outsider):
    email = _draft(owner)

    assert (
        graph_client(outsider)
        .post(f"{BASE}/me/messages/{ids.message_id(email.pk)}/send")
        .status_code
        == 404
    )
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT


def test_staff_see_but_may_not_send_as_another_user(owner, staff):
    email = _draft(owner)

    response = graph_client(staff).post(f"{BASE}/me/messages/{ids.message_id(email.pk)}/send")

    assert graph_error(response)[:2] == (403, "ErrorSendAsDenied")
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT


def test_me_answers_the_signed_in_user(owner):
    me = graph_client(owner).get(f"{BASE}/me").json()
    assert me == {
        "id": str(owner.pk),
        "displayName": "Alice Archer",
        "givenName": "Alice",
        "surname": "Archer",
        "mail": "alice@staff.example.com",
        "userPrincipalName": "alice",
    }


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("me/calendar", "calendar"),
        ("groups/1/threads", "groups"),
        ("users/1/events", "events"),
        ("", ""),
    ],
)
def test_other_paths_answer_in_graphs_shape(owner, path, segment):
    status, code, message = graph_error(graph_client(owner).get(f"{BASE}/{path}"))
    assert (status, code) == (400, "BadRequest")
    assert message == f"Resource not found for the segment '{segment}'."


def test_a_method_a_resource_does_not_take_is_405_in_graphs_shape(owner):
    assert graph_error(graph_client(owner).put(f"{BASE}/me/messages", {}, format="json"))[0] == 405


def test_a_page_of_messages_costs_the_same_queries_whatever_its_size(owner):
    client = graph_client(owner)
    client.get(f"{BASE}/me/messages")  # the token and the organisation, once

    def page_after(n):
        for _ in range(n):
            email = EmailFactory(sender_user=owner)
            EmailPartyFactory(email=email)
        return count_queries(lambda: client.get(f"{BASE}/me/messages", {"$top": 50}))[1]

    assert page_after(1) == page_after(5)
