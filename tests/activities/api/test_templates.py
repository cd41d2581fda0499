"""templates/ over the REST API, with real token authentication."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, RecordType, Template
from activities.services.attachments import attachment_store
from activities.services.emails import email_create_from_template
from tests.api import client_for, count_queries
from tests.factories import (
    AccountFactory,
    ActivityMimeAttachmentFactory,
    AttachmentBlobFactory,
    ContactFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LIST = "/api/v1/templates/"


def detail(template) -> str:
    return f"/api/v1/templates/{template.pk}/"


def instantiate(template) -> str:
    return f"/api/v1/templates/{template.pk}/instantiate/"


@pytest.fixture
def ann():
    return ContactFactory(
        first_name="Ann",
        last_name="Lee",
        email="ann@customers.example.org",
        city="Bergen",
        account=AccountFactory(name="Acme AS"),
    )


def new_template(**fields) -> dict:
    return {
        "title": "Welcome",
        "record_type": "contact",
        "language": "nb",
        "subject": "Hello {{ contact.first_name }}",
        "body_html": "<p>Dear {{ contact.full_name }}</p>",
        "body_text": "Dear {{ contact.full_name }}",
        "description": "first mail to a new contact",
        **fields,
    }


# --- Reading ------------------------------------------------------------------------


def test_anonymous_requests_are_refused_with_401():
    template = TemplateFactory()
    anonymous = client_for(None)

    answers = [
        anonymous.get(LIST),
        anonymous.get(detail(template)),
        anonymous.post(LIST, new_template(), format="json"),
        anonymous.patch(detail(template), {"title": "x"}, format="json"),
        anonymous.delete(detail(template)),
        anonymous.post(instantiate(template), {}, format="json"),
    ]

    assert [a.status_code for a in answers] == [401] * 6
    assert answers[0].json()["code"] == "not_authenticated"
    assert Template.objects.get().title == template.title


def test_any_signed_in_user_reads_templates_with_their_attachments(owner):
    template = TemplateFactory(title="Renewal", record_type="account", language="en")
    first, _ = attachment_store(owner=template, source=b"%PDF terms", filename="terms.pdf")
    second, _ = attachment_store(
        owner=template, source=b"price list", filename="prices.txt", subject="Prices"
    )

    listed = client_for(owner).get(LIST)
    one = client_for(owner).get(detail(template))

    assert listed.status_code == 200 and one.status_code == 200
    assert listed.json()["count"] == 1
    body = one.json()
    assert listed.json()["results"][0] == body
    assert set(body) == {
        "id",
        "title",
        "description",
        "record_type",
        "language",
        "subject",
        "body_html",
        "body_text",
        "attachments",
        "created_at",
        "modified_at",
    }
    assert (body["id"], body["title"], body["record_type"]) == (template.pk, "Renewal", "account")
    assert body["attachments"] == [
        {
            "id": first.pk,
            "filename": "terms.pdf",
            "mime_type": "application/pdf",
            "size": len(b"%PDF terms"),
            "attachment_id": first.blob.sha256,
            "subject": "",
        },
        {
            "id": second.pk,
            "filename": "prices.txt",
            "mime_type": "text/plain",
            "size": len(b"price list"),
            "attachment_id": second.blob.sha256,
            "subject": "Prices",
        },
    ]
    assert body["created_at"].endswith(("Z", "+00:00"))


def test_unknown_template_is_404(owner):
    answer = client_for(owner).get("/api/v1/templates/999999/")

    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_list_filters_by_record_type_and_language_and_searches_titles(owner):
    contact_nb = TemplateFactory(title="Velkommen", record_type="contact", language="nb")
    TemplateFactory(title="Welcome", record_type="contact", language="en")
    account = TemplateFactory(title="Account review", record_type="account", language="en")
    client = client_for(owner)

    def ids(query: str) -> list[int]:
        answer = client.get(LIST + query)
        assert answer.status_code == 200, answer.content
        return [t["id"] for t in answer.json()["results"]]

    assert ids("?record_type=account") == [account.pk]
    assert ids("?record_type=contact&language=nb") == [contact_nb.pk]
    assert ids("?search=review") == [account.pk]
    assert client.get(LIST + "?record_type=planet").status_code == 400


def make_blob(n: int) -> AttachmentBlob:
    digest = f"{n:064x}"
    return AttachmentBlobFactory(
        sha256=digest,
        size=n,
        file=f"blobs/sha256/{digest[:2]}/{digest[2:]}",
        touched_at=timezone.now(),
    )


def test_list_query_count_does_not_grow_with_page_size(owner):
    for n in range(55):
        template = TemplateFactory()
        for k in range(2):
            ActivityMimeAttachmentFactory(
                template=template, blob=make_blob(2 * n + k + 1), filename=f"f{k}.txt"
            )
    client = client_for(owner)
    client.get(LIST)  # the token row and the content types are cached after this

    small, small_count = count_queries(lambda: client.get(LIST + "?page_size=5"))
    large, large_count = count_queries(lambda: client.get(LIST + "?page_size=50"))

    assert len(small.json()["results"]) == 5 and len(large.json()["results"]) == 50
    assert all(len(t["attachments"]) == 2 for t in large.json()["results"])
    assert small_count == large_count


# --- Writing --------------------------------------------------------------------------


def test_staff_creates_a_template_and_is_recorded_as_its_author(staff):
    answer = client_for(staff).post(LIST, new_template(), format="json")

    assert answer.status_code == 201, answer.content
    template = Template.objects.get()
    assert answer.json()["id"] == template.pk
    assert answer.json()["attachments"] == []
    assert (template.title, template.record_type, template.language) == (
        "Welcome",
        "contact",
        "nb",
    )
    assert template.body_text == "Dear {{ contact.full_name }}"
    assert template.description == "first mail to a new contact"
    assert template.created_by == staff


def test_create_with_a_template_error_is_400_naming_the_part_and_line(staff):
    body_html = "<p>Hello</p>\n<p>Dear {{ contact.full_name }}</p>\n{% if %}broken{% endif %}"

    answer = client_for(staff).post(LIST, new_template(body_html=body_html), format="json")

    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "template_error"
    assert body["line"] == 3
    assert body["detail"].startswith("template error in HTML body, line 3: ")
    assert not Template.objects.exists()


def test_create_with_an_unknown_merge_field_names_it(staff):
    answer = client_for(staff).post(
        LIST, new_template(subject="Hi {{ contact.password }}"), format="json"
    )

    assert answer.status_code == 400
    assert answer.json()["code"] == "template_error"
    assert "contact.password" in answer.json()["detail"]
    assert not Template.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"record_type": "planet"}, "record_type"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"language": 12345678901}, "language"),
        ({"subject": ["not", "text"]}, "subject"),
    ],
)
def test_create_with_invalid_fields_is_400_naming_the_field(staff, change, field):
    answer = client_for(staff).post(LIST, new_template(**change), format="json")

    assert answer.status_code == 400
    assert field in answer.json()
    assert not Template.objects.exists()


def test_ordinary_users_may_not_create_change_or_delete_templates(owner):
    template = TemplateFactory(title="Kept")
    client = client_for(owner)

    answers = [
        client.post(LIST, new_template(), format="json"),
        client.patch(detail(template), {"title": "Changed"}, format="json"),
        client.delete(detail(template)),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403]
    assert all("is_staff" in a.json()["detail"] for a in answers)
    template.refresh_from_db()
    assert template.title == "Kept"
    assert Template.objects.count() == 1


def test_patch_changes_only_the_given_fields(staff):
    template = TemplateFactory(title="Old", subject="Hi {{ contact.first_name }}", language="en")

    answer = client_for(staff).patch(
        detail(template), {"title": "New", "language": "de"}, format="json"
    )

    assert answer.status_code == 200, answer.content
    template.refresh_from_db()
    assert (template.title, template.language) == ("New", "de")
    assert template.subject == "Hi {{ contact.first_name }}"
    assert answer.json()["title"] == "New"


def test_patch_with_a_template_error_keeps_the_stored_template(staff):
    template = TemplateFactory(body_text="Fine {{ contact.first_name }}")

    answer = client_for(staff).patch(
        detail(template), {"body_text": "one\ntwo {{ contact.first_name|nosuchfilter }}"}
    )

    assert answer.status_code == 400
    assert answer.json()["code"] == "template_error"
    assert answer.json()["line"] == 2
    assert "text body, line 2" in answer.json()["detail"]
    template.refresh_from_db()
    assert template.body_text == "Fine {{ contact.first_name }}"


def test_put_is_not_offered(staff):
    template = TemplateFactory()

    answer = client_for(staff).put(detail(template), new_template(), format="json")

    assert answer.status_code == 405


def test_create_with_the_same_idempotency_key_creates_one_template(staff):
    client = client_for(staff)

    first = client.post(LIST, new_template(), format="json", HTTP_IDEMPOTENCY_KEY="tpl-1")
    again = client.post(LIST, new_template(), format="json", HTTP_IDEMPOTENCY_KEY="tpl-1")

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Template.objects.count() == 1


def test_deleting_a_template_keeps_the_emails_made_from_it_and_the_stored_files(staff, ann):
    template = TemplateFactory(title="Offer")
    attachment, _ = attachment_store(owner=template, source=b"offer bytes", filename="offer.pdf")
    blob = attachment.blob
    email = email_create_from_template(template=template, actor=staff, regarding=ann)

    answer = client_for(staff).delete(detail(template))

    assert answer.status_code == 204
    assert not Template.objects.exists()
    assert not ActivityMimeAttachment.objects.filter(template_id=template.pk).exists()
    email.refresh_from_db()
    assert email.template is None
    assert email.subject == "Hello Ann"
    assert [a.filename for a in email.attachments.all()] == ["offer.pdf"]
    assert AttachmentBlob.objects.filter(pk=blob.pk).exists()
    assert default_storage.exists(blob.file.name)


def test_deleting_a_template_keeps_its_blobs_for_the_collector(staff):
    template = TemplateFactory()
    attachment, _ = attachment_store(owner=template, source=b"only here", filename="a.txt")

    answer = client_for(staff).delete(detail(template))

    assert answer.status_code == 204
    blob = AttachmentBlob.objects.get()
    assert blob.pk == attachment.blob_id
    assert default_storage.exists(blob.file.name)
    assert Email.objects.count() == 0


# --- Instantiate ----------------------------------------------------------------------


def test_instantiate_renders_for_a_contact_with_the_acting_user_as_sender(owner, ann):
    template = TemplateFactory(
        subject="Hello {{ contact.first_name }}",
        body_html="<p>{{ contact.full_name }} of {{ account.name }}, from {{ sender.name }}</p>",
        body_text="{{ contact.city }} / {{ sender.email }}",
    )
    attachment, _ = attachment_store(owner=template, source=b"brochure", filename="b.pdf")

    answer = client_for(owner).post(
        instantiate(template), {"regarding": {"type": "contact", "id": ann.pk}}, format="json"
    )

    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "subject": "Hello Ann",
        "body_html": "<p>Ann Lee of Acme AS, from Alice Archer</p>",
        "body_text": "Bergen / alice@staff.example.com",
        "attachments": [
            {
                "id": attachment.pk,
                "filename": "b.pdf",
                "mime_type": "application/pdf",
                "size": 8,
                "attachment_id": attachment.blob.sha256,
                "subject": "",
            }
        ],
    }
    assert Email.objects.count() == 0


def test_instantiate_takes_a_queue_as_sender(owner, ann, team_queue):
    template = TemplateFactory(subject="From {{ sender.name }} <{{ sender.email }}>")

    answer = client_for(owner).post(
        instantiate(template),
        {
            "regarding": {"type": "contact", "id": ann.pk},
            "sender": {"type": "queue", "id": team_queue.pk},
        },
        format="json",
    )

    assert answer.status_code == 200, answer.content
    assert answer.json()["subject"] == "From Support <support@example.com>"


def test_instantiate_a_global_template_needs_no_record(owner):
    template = TemplateFactory(record_type=RecordType.GLOBAL, subject="News", body_text="Hi")

    answer = client_for(owner).post(instantiate(template), {}, format="json")

    assert answer.status_code == 200, answer.content
    assert answer.json()["subject"] == "News"


@pytest.mark.parametrize("regarding_kind", ["account", "user", None])
def test_instantiate_for_the_wrong_record_type_is_400(owner, regarding_kind):
    template = TemplateFactory(record_type="contact", title="For contacts")
    record = {"account": AccountFactory, "user": UserFactory}.get(regarding_kind)
    body = {"regarding": {"type": regarding_kind, "id": record().pk}} if record else {}

    answer = client_for(owner).post(instantiate(template), body, format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "template_error"
    assert "'For contacts' is for a contact record" in answer.json()["detail"]


def test_instantiate_render_error_is_400_naming_the_line(owner, ann):
    # Stored before the checks (e.g. by an older version): the error shows on render.
    template = TemplateFactory(body_html="<p>one</p>\n<p>two</p>\n{{ contact.salary }}")

    answer = client_for(owner).post(
        instantiate(template), {"regarding": {"type": "contact", "id": ann.pk}}, format="json"
    )

    assert answer.status_code == 400
    assert answer.json()["code"] == "template_error"
    assert answer.json()["line"] == 3
    assert answer.json()["detail"].startswith("template error in HTML body, line 3")


@pytest.mark.parametrize(
    "regarding",
    [
        {"type": "contact", "id": 999999},
        {"type": "queue", "id": 1},
        {"type": "contact", "id": "5"},
        {"type": "contact", "id": 10**30},
        "contact:5",
    ],
)
def test_instantiate_with_an_invalid_record_is_400_naming_the_field(owner, regarding):
    template = TemplateFactory()

    answer = client_for(owner).post(instantiate(template), {"regarding": regarding}, format="json")

    assert answer.status_code == 400
    assert "regarding" in answer.json()


def test_instantiate_an_unknown_template_is_404(owner):
    answer = client_for(owner).post("/api/v1/templates/999999/instantiate/", {}, format="json")

    assert answer.status_code == 404


def test_a_template_id_that_is_not_a_number_is_a_json_404(owner):
    client = client_for(owner)

    answers = [
        client.get("/api/v1/templates/0.5/"),
        client.post("/api/v1/templates/abc/instantiate/", {}, format="json"),
    ]

    assert [a.status_code for a in answers] == [404, 404]
    assert all(a.json()["code"] == "not_found" for a in answers)
