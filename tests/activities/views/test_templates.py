"""The template pages: list, create, edit, delete, and the live preview (test client)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import MULTIPART_CONTENT
from django.utils import timezone

from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, Template
from tests.factories import (
    AccountFactory,
    ActivityMimeAttachmentFactory,
    AttachmentBlobFactory,
    ContactFactory,
    EmailFactory,
    QueueFactory,
    TemplateFactory,
)
from tests.pages import signed_in

pytestmark = pytest.mark.django_db

PREVIEW = "/templates/preview/"


@pytest.fixture
def ada(db):
    account = AccountFactory(name="Lovelace Ltd")
    return ContactFactory(
        first_name="Ada", last_name="Lovelace", email="ada@example.org", account=account
    )


def fields(**changes) -> dict[str, str]:
    data = {
        "title": "Welcome",
        "record_type": "contact",
        "language": "en",
        "description": "First mail to a new contact",
        "subject": "Welcome, {{ contact.first_name }}",
        "body_html": "<p>Dear {{ contact.full_name }},</p>\n<p>{{ sender.name }}</p>",
        "body_text": "Dear {{ contact.full_name }},\n{{ sender.name }}",
    }
    return {**data, **changes}


def template_state(template: Template) -> tuple:
    template.refresh_from_db()
    return (template.title, template.subject, template.body_html, template.body_text)


# --- The list ----------------------------------------------------------------------


def test_pages_need_a_sign_in(db):
    template = TemplateFactory()
    client = Client()
    for url in ("/templates/", "/templates/new/", f"/templates/{template.pk}/"):
        answer = client.get(url)
        assert answer.status_code == 302 and answer["Location"].startswith("/sign-in/")
    assert client.post(PREVIEW, fields()).status_code == 302
    assert Template.objects.count() == 1


def test_the_list_shows_each_template_with_its_author_and_searches_by_name(staff, owner):
    TemplateFactory(title="Welcome", subject="Hi {{ contact.first_name }}", created_by=staff)
    TemplateFactory(title="Invoice reminder", record_type="account", language="de")

    page = signed_in(owner).get("/templates/")
    html = page.content.decode()
    assert page.status_code == 200
    assert [t.title for t in page.context["page"]] == ["Invoice reminder", "Welcome"]
    assert "Hi {{ contact.first_name }}" in html and "created by Stella Staff" in html
    assert html.count("created by") == 1  # no author is recorded for the other
    assert "Account" in html and ">de<" in html
    assert 'aria-current="page">Templates<' in html
    assert "New template" not in html  # writing needs staff

    found = signed_in(staff).get("/templates/?q=invoice")
    assert [t.title for t in found.context["page"]] == ["Invoice reminder"]
    assert "New template" in found.content.decode()
    nothing = signed_in(staff).get("/templates/?q=zebra")
    assert "No template is named like" in nothing.content.decode()


# --- Create, edit, delete ----------------------------------------------------------


def test_staff_create_a_template_through_the_page(staff):
    answer = signed_in(staff).post("/templates/new/", fields())

    template = Template.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/templates/{template.pk}/"
    assert template.title == "Welcome" and template.record_type == "contact"
    assert template.subject == "Welcome, {{ contact.first_name }}"
    assert template.created_by == staff
    assert Email.objects.count() == 0
    followed = signed_in(staff).get(answer["Location"])
    assert followed.status_code == 200 and 'value="Welcome"' in followed.content.decode()


def test_staff_edit_a_template_and_only_it_changes(staff):
    template = TemplateFactory(title="Old", created_by=staff)
    other = TemplateFactory(title="Other")
    before_other = template_state(other)

    answer = signed_in(staff).post(
        f"/templates/{template.pk}/", fields(title="New", body_text="Bye {{ contact.city }}")
    )

    assert answer.status_code == 302
    assert template_state(template) == (
        "New",
        "Welcome, {{ contact.first_name }}",
        fields()["body_html"],
        "Bye {{ contact.city }}",
    )
    assert template_state(other) == before_other
    assert Template.objects.count() == 2


def test_an_error_in_the_html_body_is_a_400_with_its_line_next_to_the_field(staff):
    template = TemplateFactory(title="Kept")
    before = template_state(template)
    broken = "<p>Hello</p>\n<p>{% if contact.city %}in {{ contact.city }}</p>"

    answer = signed_in(staff).post(f"/templates/{template.pk}/", fields(body_html=broken))

    html = answer.content.decode()
    assert answer.status_code == 400
    assert (
        answer.context["form"]
        .errors["body_html"][0]
        .startswith("template error in HTML body, line 2:")
    )
    # Next to its field, linked to it, and the typed text is kept.
    assert '<p class="field-error" id="body_html-error">template error in HTML body, line 2' in html
    assert 'aria-describedby="body_html-error" aria-invalid="true"' in html
    assert "{% if contact.city %}in {{ contact.city }}&lt;/p&gt;</textarea>" in html
    assert template_state(template) == before


def test_an_unknown_merge_field_in_the_subject_is_refused_on_create(staff):
    answer = signed_in(staff).post("/templates/new/", fields(subject="Hi {{ contact.shoe }}"))

    assert answer.status_code == 400
    assert "template error in subject, line 1" in answer.context["form"].errors["subject"][0]
    assert 'value="Hi {{ contact.shoe }}"' in answer.content.decode()
    assert Template.objects.count() == 0


def test_a_missing_name_is_a_400_naming_the_field(staff):
    answer = signed_in(staff).post("/templates/new/", fields(title=""))

    assert answer.status_code == 400
    assert "This field is required." in answer.content.decode()
    assert Template.objects.count() == 0


def test_delete_asks_first_and_emails_made_from_the_template_keep_their_text(staff):
    template = TemplateFactory(title="Going")
    email = EmailFactory(template=template, subject="Made from it", body_text="Hi Ada")
    client = signed_in(staff)

    confirm = client.get(f"/templates/{template.pk}/delete/")
    assert confirm.status_code == 200 and "Delete the template “Going”?" in confirm.content.decode()
    assert Template.objects.filter(pk=template.pk).exists()

    answer = client.post(f"/templates/{template.pk}/delete/")

    assert answer.status_code == 302 and answer["Location"] == "/templates/"
    assert not Template.objects.filter(pk=template.pk).exists()
    email.refresh_from_db()
    assert email.template is None and email.subject == "Made from it"
    assert "Template “Going” deleted." in client.get("/templates/").content.decode()


def test_someone_without_staff_may_read_and_preview_but_not_write(owner, ada):
    template = TemplateFactory(title="Fixed")
    before = template_state(template)
    client = signed_in(owner)

    page = client.get(f"/templates/{template.pk}/")
    assert page.status_code == 200
    assert "Only staff can create or change templates" in page.content.decode()
    assert ">Save<" not in page.content.decode()

    edit = client.post(f"/templates/{template.pk}/", fields(title="Changed"))
    assert edit.status_code == 403
    assert "changing templates needs a staff account" in edit.content.decode()
    assert 'value="Changed"' in edit.content.decode()
    create = client.post("/templates/new/", fields())
    assert create.status_code == 403
    delete = client.post(f"/templates/{template.pk}/delete/")
    assert delete.status_code == 403
    assert "deleting templates needs a staff account" in delete.content.decode()

    assert template_state(template) == before
    assert Template.objects.count() == 1
    preview = client.post(PREVIEW, fields(preview_record=f"contact:{ada.pk}"))
    assert preview.status_code == 200 and "Welcome, Ada" in preview.content.decode()


def test_an_unknown_template_is_a_404(staff):
    client = signed_in(staff)
    assert client.get("/templates/999/").status_code == 404
    assert client.post("/templates/999/delete/").status_code == 404


def test_the_edit_page_lists_the_template_attachments(staff):
    template = TemplateFactory(title="With files")
    blob = AttachmentBlobFactory(
        sha256="ab" * 32, size=2048, file="blobs/sha256/ab/x", touched_at=timezone.now()
    )
    ActivityMimeAttachmentFactory(
        template=template, blob=blob, filename="terms.pdf", mime_type="application/pdf"
    )

    html = signed_in(staff).get(f"/templates/{template.pk}/").content.decode()

    assert "terms.pdf" in html and "2.0\xa0KB" in html and "application/pdf" in html
    assert ActivityMimeAttachment.objects.count() == 1


# --- The preview -------------------------------------------------------------------


def test_the_preview_fills_merge_fields_for_a_contact_and_saves_nothing(staff, ada):
    template = TemplateFactory(title="Stays")
    before = template_state(template)
    client = signed_in(staff)
    data = fields(preview_record=f"contact:{ada.pk}", preview_sender=f"user:{staff.pk}")

    parts = client.post(PREVIEW, data, headers={"HX-Request": "true"})
    frame = client.post(PREVIEW, {**data, "show": "frame"})

    assert parts.status_code == 200
    html = parts.content.decode()
    assert '<p class="preview-subject">Welcome, Ada</p>' in html
    assert "Dear Ada Lovelace,\nStella Staff</pre>" in html
    assert frame.status_code == 200
    assert "<p>Dear Ada Lovelace,</p>\n<p>Stella Staff</p>" in frame.content.decode()
    assert "script-src 'none'" in frame["Content-Security-Policy"]
    assert template_state(template) == before
    assert Template.objects.count() == 1 and Email.objects.count() == 0


def test_the_preview_uses_a_queue_of_the_user_as_sender_and_no_other(staff, ada):
    support = QueueFactory(name="Support", email="support@example.com", members=[staff])
    sales = QueueFactory(name="Sales", email="sales@example.com")
    client = signed_in(staff)
    data = fields(preview_record=f"contact:{ada.pk}", body_text="From {{ sender.email }}")

    mine = client.post(PREVIEW, {**data, "preview_sender": f"queue:{support.pk}"})
    theirs = client.post(PREVIEW, {**data, "preview_sender": f"queue:{sales.pk}"})

    assert "From support@example.com" in mine.content.decode()
    assert theirs.status_code == 404


def test_the_preview_shows_a_template_error_with_its_line_next_to_the_field(staff, ada):
    data = fields(
        preview_record=f"contact:{ada.pk}", body_text="Hello\n\n{% for x in %}{% endfor %}"
    )

    parts = signed_in(staff).post(PREVIEW, data)
    frame = signed_in(staff).post(PREVIEW, {**data, "show": "frame"})

    html = parts.content.decode()
    assert parts.status_code == 200  # the preview's result, not a refused request
    assert '<p class="error preview-error">template error in text body, line 3:' in html
    assert (
        '<p class="field-error" id="body_text-error" hx-swap-oob="true">'
        "template error in text body, line 3:" in html
    )
    assert '<p class="field-error" id="body_html-error" hx-swap-oob="true"></p>' in html
    assert "No preview: template error in text body, line 3" in frame.content.decode()


def test_the_preview_names_a_record_of_the_wrong_type(staff, ada):
    answer = signed_in(staff).post(
        PREVIEW, fields(record_type="account", preview_record=f"contact:{ada.pk}")
    )

    assert "is for a account record, not contact" in answer.content.decode()


def test_the_preview_of_an_unknown_record_is_a_404(staff):
    client = signed_in(staff)
    assert client.post(PREVIEW, fields(preview_record="contact:999")).status_code == 404
    assert client.post(PREVIEW, fields(preview_record="planet:1")).status_code == 404


def test_the_record_picker_finds_contacts_and_accounts_by_name(staff, ada):
    ContactFactory(first_name="Bob", last_name="Builder", account=None)
    AccountFactory(name="Adams Bakery")
    client = signed_in(staff)

    found = client.get("/templates/records/?record_q=ada&record_type=contact")

    html = found.content.decode()
    assert found.status_code == 200
    assert (
        f'<option value="contact:{ada.pk}" selected>Ada Lovelace (ada@example.org)</option>' in html
    )
    assert "Adams Bakery" in html and "Builder" not in html
    assert html.index('label="Contacts"') < html.index('label="Accounts"')
    account_first = client.get("/templates/records/?record_q=ada&record_type=account")
    assert account_first.content.decode().index(
        'label="Accounts"'
    ) < account_first.content.decode().index('label="Contacts"')
    none = client.get("/templates/records/?record_q=zebra")
    assert "No record matches" in none.content.decode()


def test_the_editor_offers_the_user_and_their_queues_as_senders(staff):
    QueueFactory(name="Support", email="support@example.com", members=[staff])
    QueueFactory(name="Sales", email="sales@example.com")

    html = signed_in(staff).get("/templates/new/").content.decode()

    assert "Me (Stella Staff, stella@staff.example.com)" in html
    assert "Support (support@example.com)" in html and "Sales (" not in html


# --- Attachments -------------------------------------------------------------------


def test_staff_attach_a_file_and_the_same_bytes_are_stored_once(staff, org):
    template = TemplateFactory(title="With terms")
    client = signed_in(staff)
    url = f"/templates/{template.pk}/attachments/"

    first = client.post(url, {"file": SimpleUploadedFile("terms.txt", b"the terms", "text/plain")})
    second = client.post(url, {"file": SimpleUploadedFile("copy.txt", b"the terms", "text/plain")})

    assert first.status_code == 302 and first["Location"] == f"/templates/{template.pk}/"
    assert second.status_code == 302
    files = list(template.attachments.order_by("position").values_list("filename", "mime_type"))
    assert files == [("terms.txt", "text/plain"), ("copy.txt", "text/plain")]
    assert AttachmentBlob.objects.count() == 1
    page = client.get(f"/templates/{template.pk}/").content.decode()
    assert "terms.txt" in page
    assert "Attached “copy.txt” (the same bytes were already stored" in page
    assert "9\xa0bytes" in page


def test_an_attachment_over_the_limit_is_refused_with_the_cause(staff, org):
    org.max_attachment_bytes = 4
    org.save()
    template = TemplateFactory()

    answer = signed_in(staff).post(
        f"/templates/{template.pk}/attachments/",
        {"file": SimpleUploadedFile("big.bin", b"more than four bytes")},
    )

    assert answer.status_code == 413
    assert answer.context["attachment_error"]
    assert 'role="alert" id="attachment-error"' in answer.content.decode()
    assert template.attachments.count() == 0 and AttachmentBlob.objects.count() == 0


def test_staff_remove_an_attachment_and_others_may_not(staff, owner, org):
    template = TemplateFactory()
    blob = AttachmentBlobFactory(
        sha256="cd" * 32, size=3, file="blobs/sha256/cd/x", touched_at=timezone.now()
    )
    kept = ActivityMimeAttachmentFactory(template=template, blob=blob, filename="a.txt")
    url = f"/templates/{template.pk}/attachments/{kept.pk}/remove/"

    refused = signed_in(owner).post(url)
    upload = signed_in(owner).post(
        f"/templates/{template.pk}/attachments/", {"file": SimpleUploadedFile("x.txt", b"x")}
    )
    assert refused.status_code == 403 and upload.status_code == 403
    assert "needs a staff account" in refused.content.decode()
    assert list(template.attachments.all()) == [kept]

    removed = signed_in(staff).post(url)
    assert removed.status_code == 302
    assert template.attachments.count() == 0
    assert AttachmentBlob.objects.count() == 1  # the blob stays for the garbage collector
    other = TemplateFactory()
    assert (
        signed_in(staff).post(f"/templates/{other.pk}/attachments/{kept.pk}/remove/").status_code
        == 404
    )


def test_an_upload_declared_over_the_limit_is_refused_unread_and_one_without_csrf_is_403(
    staff, org
):
    org.max_attachment_bytes = 1024
    org.save()
    template = TemplateFactory()
    client = signed_in(staff)
    body = client._encode_data({"file": SimpleUploadedFile("big.bin", b"x")}, MULTIPART_CONTENT)
    unread = client.generic(
        "POST",
        f"/templates/{template.pk}/attachments/",
        body,
        content_type=MULTIPART_CONTENT,
        CONTENT_LENGTH=str(1024 + 65 * 1024),
    )
    assert unread.status_code == 413
    assert "larger than the limit of 1024 bytes" in unread.context["attachment_error"]

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff)
    refused = csrf_client.post(
        f"/templates/{template.pk}/attachments/",
        {"file": SimpleUploadedFile("a.txt", b"abc")},
    )
    assert refused.status_code == 403
    assert template.attachments.count() == 0 and AttachmentBlob.objects.count() == 0
