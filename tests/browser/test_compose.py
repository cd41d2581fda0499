"""Compose in a real browser: a contact found by typing, a file by the picker, Send over
real SMTP; a refused sender explained and the draft kept until an approver approves;
a template filled in for a contact; and the whole of it by keyboard alone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from activities.models import Email, EmailStatus, PartyRole
from crm.models import EmailApproval
from tests.factories import (
    ContactFactory,
    QueueFactory,
    TemplateFactory,
)

from .conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every byte value, so that a transfer encoding that mangles anything shows.
PAYLOAD = bytes(range(256)) * 64


@pytest.fixture
def ann(db):
    return ContactFactory(first_name="Ann", last_name="Lee", email="ann.lee@customers.example.org")


def test_compose_to_a_contact_from_an_approved_queue_with_a_file_arrives_byte_identical(
    page,
    live_server,
    sign_in,
    watch,
    screenshot,
    smtp_settings,
    eager_celery,
    owner,
    ann,
    team_queue,
):
    sign_in(owner)
    page.goto("/mail/")
    page.get_by_role("link", name="Write").click()
    page.wait_for_url("**/mail/new/")
    page.get_by_label("From").select_option(f"queue:{team_queue.pk}")
    to = page.get_by_role("combobox", name="To", exact=True)
    to.press_sequentially("ann l")
    page.get_by_role("option", name="Ann Lee").click()
    assert to.input_value() == "Ann Lee <ann.lee@customers.example.org>, "
    page.get_by_label("Subject").fill("Renewal")
    page.get_by_label("Message").fill("Hello Ann,\n\nthe terms are attached.")
    page.get_by_label("Add files").set_input_files(
        files=[{"name": "terms.pdf", "mimeType": "application/pdf", "buffer": PAYLOAD}]
    )
    # The first file saved the draft: the page now lives at the draft's edit URL.
    expect(page.locator("#attachment-list")).to_contain_text("terms.pdf")
    email = Email.objects.get()
    assert page.url.endswith(f"/mail/{email.pk}/edit/")
    screenshot(page, "compose")

    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url(f"**/mail/{email.pk}/")
    expect(page.locator(".email-status .badge")).to_have_text("Sent")
    expect(page.get_by_role("status")).to_contain_text("Sent: the email is on its way.")

    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.sender_queue == team_queue
    [received] = smtp_settings.handler.messages
    assert received.rcpt_tos == ["ann.lee@customers.example.org"]
    message = received.message
    assert message["From"] == "Support <support@example.com>"
    assert message["To"] == "Ann Lee <ann.lee@customers.example.org>"
    assert message["Subject"] == f"Renewal CRM:{email.pk:07d}"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "terms.pdf"
    assert attachment.get_content() == PAYLOAD
    assert Email.objects.count() == 1
    assert watch.page_errors == [] and watch.console_errors == []


def test_an_unapproved_queue_is_refused_and_sends_once_an_approver_approves_it(
    page, live_server, sign_in, watch, screenshot, smtp_settings, eager_celery, owner, ann, approver
):
    sales = QueueFactory(
        name="Sales",
        email="sales@example.com",
        members=[owner],
        email_router_access_approval=EmailApproval.PENDING,
    )
    sign_in(owner)
    page.goto("/mail/new/")
    sender = page.get_by_label("From")
    sender.select_option(f"queue:{sales.pk}")
    expect(page.locator("#sender-note")).to_contain_text(
        "an administrator must approve it before mail can be sent from it"
    )
    page.get_by_role("combobox", name="To", exact=True).fill(ann.email)
    page.get_by_label("Subject").fill("Our offer")
    page.get_by_label("Message").fill("Dear Ann, here is our offer.")
    page.get_by_role("button", name="Send", exact=True).click()

    expect(page.get_by_role("alert")).to_contain_text("Not sent: sender address is not approved")
    expect(page.locator("#sender-error")).to_contain_text("sales@example.com is pending approval")
    email = Email.objects.get()
    assert page.url.endswith(f"/mail/{email.pk}/edit/")
    assert page.get_by_label("Subject").input_value() == "Our offer"
    assert email.status == EmailStatus.DRAFT and email.subject == "Our offer"
    screenshot(page, "compose-refused")

    sign_in(approver)
    page.goto("/approvals/")
    page.get_by_role("button", name="Approve Sales").click()
    expect(page.get_by_role("button", name="Approve Sales")).to_have_count(0)
    sales.refresh_from_db()
    assert sales.email_router_access_approval == EmailApproval.APPROVED

    sign_in(owner)
    page.goto(f"/mail/{email.pk}/edit/")
    assert page.get_by_label("Subject").input_value() == "Our offer"
    expect(page.locator("#sender-note")).to_have_text("")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url(f"**/mail/{email.pk}/")
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    [received] = smtp_settings.handler.messages
    assert received.message["From"] == "Sales <sales@example.com>"
    # The refused send is answered with its status (400), which Chromium logs; nothing else.
    assert watch.page_errors == []
    assert watch.console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]


def test_insert_a_template_for_a_contact_fills_the_merge_fields(
    page, live_server, sign_in, watch, screenshot, owner, ann
):
    TemplateFactory(
        title="Welcome",
        subject="Welcome, {{ contact.first_name }}",
        body_text="Dear {{ contact.full_name }} of {{ account.name }},\n\n{{ sender.name }}",
        body_html="<p>Dear {{ contact.full_name }}</p>",
    )
    sign_in(owner)
    page.goto("/mail/new/")
    page.get_by_role("combobox", name="Regarding").press_sequentially("Lee")
    page.get_by_role("option", name="Contact: Ann Lee").click()
    expect(page.locator("[data-regarding-label]")).to_have_text(
        "Contact: Ann Lee <ann.lee@customers.example.org>"
    )
    page.get_by_label("Insert a template").select_option(label="Welcome (contact)")
    page.get_by_role("button", name="Insert").click()
    expect(page.get_by_label("Subject")).to_have_value("Welcome, Ann")
    expect(page.get_by_label("Message")).to_have_value(
        f"Dear Ann Lee of {ann.account.name},\n\nAlice Archer"
    )
    expect(page.locator(".template-note")).to_have_text("Inserted the template “Welcome”.")
    screenshot(page, "compose-template")

    page.get_by_role("button", name="Save draft", exact=True).click()
    page.wait_for_url("**/edit/")
    email = Email.objects.get()
    assert email.subject == "Welcome, Ann" and email.regarding == ann
    assert email.template.title == "Welcome" and email.body_html == "<p>Dear Ann Lee</p>"

    # Files dropped on the drop zone; the same bytes twice are stored once.
    for name in ("notes.txt", "copy.txt"):
        page.evaluate(DROP, name)
        expect(page.locator("#attachment-list")).to_contain_text(name)
    expect(page.locator("#attachment-list li").nth(1)).to_contain_text("already stored")
    assert [a.filename for a in email.attachments.order_by("position")] == ["notes.txt", "copy.txt"]
    assert len({a.blob_id for a in email.attachments.all()}) == 1

    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "compose-phone")
    assert watch.page_errors == [] and watch.console_errors == []


DROP = """(name) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File(["the same bytes"], name, {type: "text/plain"}));
    const zone = document.querySelector("[data-dropzone]");
    zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""


def _tab_to(page, element_id: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def test_compose_and_send_by_keyboard_alone(
    page, live_server, sign_in, watch, screenshot, smtp_settings, eager_celery, owner, ann
):
    sign_in(owner)
    page.goto("/mail/new/")
    _tab_to(page, "id_to")
    page.keyboard.type("ann")
    expect(page.locator("#to-options")).to_be_visible()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.locator("#id_to").input_value() == "Ann Lee <ann.lee@customers.example.org>, "
    _tab_to(page, "id_subject")
    page.keyboard.type("Typed, not clicked")
    page.keyboard.press("Tab")
    page.keyboard.type("Hello Ann")
    _tab_to(page, "send-button")
    screenshot(page, "compose-keyboard")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/mail/\d+/$"))
    email = Email.objects.get()
    assert email.status == EmailStatus.SENT
    assert email.parties.get(role=PartyRole.TO).contact == ann
    [received] = smtp_settings.handler.messages
    assert received.message["Subject"].startswith("Typed, not clicked")
    assert watch.page_errors == [] and watch.console_errors == []
