"""The template pages in a real browser: the list, and the editor's live preview."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from activities.models import Email, Template
from tests.factories import (
    AccountFactory,
    ContactFactory,
    QueueFactory,
    TemplateFactory,
)

from .conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_list_shows_the_templates_and_opens_one(
    page, live_server, sign_in, staff, watch, screenshot
):
    TemplateFactory(
        title="Welcome",
        description="First mail to a new contact",
        subject="Welcome, {{ contact.first_name }}",
        created_by=staff,
    )
    TemplateFactory(
        title="Invoice reminder", record_type="account", subject="Invoice for {{ account.name }}"
    )
    TemplateFactory(title="Meeting follow-up", record_type="global", language="de", subject="Danke")
    sign_in(staff)

    page.goto("/mail/")
    page.get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", name="Templates")).to_be_visible()
    expect(page.get_by_role("link", name="Templates")).to_have_attribute("aria-current", "page")
    screenshot(page, "templates")

    page.get_by_label("Search by name").fill("welc")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("table.templates tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Welcome").click()
    expect(page.get_by_label("Name")).to_have_value("Welcome")

    page.set_viewport_size(PHONE)
    page.goto("/templates/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "templates-phone")
    assert watch.page_errors == [] and watch.console_errors == []


def test_typing_in_the_html_body_updates_the_preview_for_the_chosen_contact(
    page, live_server, sign_in, staff, watch, screenshot
):
    account = AccountFactory(name="Lovelace Ltd")
    ContactFactory(first_name="Ada", last_name="Lovelace", email="ada@example.org", account=account)
    ContactFactory(first_name="Grace", last_name="Hopper", email="grace@example.org", account=None)
    QueueFactory(name="Support", email="support@example.com", members=[staff])
    template = TemplateFactory(
        title="Welcome",
        subject="Welcome, {{ contact.first_name }}",
        body_html="<p>Hello</p>",
        body_text="Dear {{ contact.full_name }}",
    )
    sign_in(staff)
    page.goto(f"/templates/{template.pk}/")

    frame = page.frame_locator("#preview-frame")
    # The first contact (by last name) is the default record.
    expect(page.locator(".preview-subject")).to_have_text("Welcome, Grace")
    expect(frame.locator("body")).to_contain_text("Hello")

    page.get_by_label("Find a record").fill("lovel")
    expect(page.get_by_label("Record", exact=True)).to_have_value(re.compile(r"^contact:\d+$"))
    expect(page.locator(".preview-subject")).to_have_text("Welcome, Ada")
    page.get_by_label("Sender").select_option(label="Support (support@example.com)")

    body = page.get_by_label("HTML body")
    body.fill("")
    body.press_sequentially(
        "<p>Dear {{ contact.full_name }} of {{ account.name }},</p><p>{{ sender.name }}</p>",
        delay=5,
    )
    expect(frame.locator("body")).to_contain_text("Dear Ada Lovelace of Lovelace Ltd,")
    expect(frame.locator("body")).to_contain_text("Support")
    expect(page.locator(".preview-text")).to_have_text("Dear Ada Lovelace")
    screenshot(page, "template-edit")

    # The preview saved nothing.
    template.refresh_from_db()
    assert template.body_html == "<p>Hello</p>"
    assert Template.objects.count() == 1 and Email.objects.count() == 0
    assert watch.foreign_requests(live_server.url) == []
    assert watch.page_errors == [] and watch.console_errors == []


def test_a_broken_tag_shows_its_line_next_to_the_field_and_fixing_it_clears_it(
    page, live_server, sign_in, staff, watch, screenshot
):
    ContactFactory(first_name="Ada", last_name="Lovelace", email="ada@example.org")
    sign_in(staff)
    page.goto("/templates/new/")
    page.get_by_label("Name").fill("Broken on purpose")
    page.get_by_label("Subject").fill("Hi {{ contact.first_name }}")
    body = page.get_by_label("HTML body")
    body.fill("<p>Hello</p>\n<p>{% if contact.city %}in town</p>")

    error = page.locator("#body_html-error")
    expect(error).to_contain_text("template error in HTML body, line 2")
    expect(body).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#preview-parts")).to_contain_text("line 2")
    screenshot(page, "template-error")

    body.fill("<p>Hello</p>\n<p>{% if contact.city %}in town{% endif %}</p>")
    expect(error).to_be_empty()
    expect(body).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator(".preview-subject")).to_have_text("Hi Ada")

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Template “Broken on purpose” created.")
    saved = Template.objects.get()
    assert saved.body_html.endswith("{% endif %}</p>") and saved.created_by == staff

    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading")).to_have_text("Delete the template “Broken on purpose”?")
    assert Template.objects.filter(pk=saved.pk).exists()
    page.get_by_role("button", name="Delete template").click()
    expect(page.get_by_role("status")).to_contain_text("Template “Broken on purpose” deleted.")
    assert not Template.objects.exists()
    assert watch.page_errors == [] and watch.console_errors == []


def test_the_editor_fits_a_phone(page, live_server, sign_in, staff, watch, screenshot):
    ContactFactory(first_name="Ada", last_name="Lovelace", email="ada@example.org")
    template = TemplateFactory(title="Welcome")
    sign_in(staff)
    page.set_viewport_size(PHONE)
    page.goto(f"/templates/{template.pk}/")
    expect(page.locator(".preview-subject")).to_have_text("Hello Ada")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "template-edit-phone")
    assert watch.page_errors == [] and watch.console_errors == []


def test_a_file_is_attached_with_the_picker_and_removed(
    page, live_server, sign_in, staff, watch, screenshot, tmp_path
):
    ContactFactory(first_name="Ada", last_name="Lovelace", email="ada@example.org")
    template = TemplateFactory(title="With terms")
    terms = tmp_path / "terms.txt"
    terms.write_bytes(b"The terms, version 2.\n")
    sign_in(staff)
    page.goto(f"/templates/{template.pk}/")

    page.get_by_label("Add a file").set_input_files(str(terms))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Attached “terms.txt”.")
    expect(page.locator(".template-attachments li")).to_contain_text("terms.txt")
    expect(page.locator(".template-attachments li")).to_contain_text("22\xa0bytes")
    assert template.attachments.get().blob.size == 22
    screenshot(page, "template-attachments")

    page.get_by_role("button", name="Remove terms.txt").click()
    expect(page.get_by_role("status")).to_contain_text("Removed “terms.txt”.")
    assert template.attachments.count() == 0
    assert watch.page_errors == [] and watch.console_errors == []
