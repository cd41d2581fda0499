"""The outbox viewer: messages written by OutboxBackend, listed and shown as they arrive."""

from __future__ import annotations

import os
from email import message_from_bytes, policy

import pytest
from django.test import Client

from activities.models import Email
from activities.services.attachments import attachment_store
from activities.services.delivery import email_deliver
from activities.services.emails import email_create, email_send
from tests.pages import signed_in

pytestmark = pytest.mark.django_db

OUTBOX = "activities.mail.OutboxBackend"
PDF = b"%PDF-1.4\n" + os.urandom(3000) + b"\n%%EOF\n"


@pytest.fixture
def outbox(settings, org):
    settings.EMAIL_BACKEND = OUTBOX
    return settings.OUTBOX_DIR


def deliver(sender, *, subject="Quarterly figures", html="<p>Hello <b>Ann</b></p>", files=()):
    """Create, send and deliver an email through the services: a real outbox file."""
    draft = email_create(
        actor=sender,
        to=["Ann Lee <ann@example.com>"],
        cc=["carl@example.org"],
        bcc=["hidden@example.net"],
        subject=subject,
        body_text="Hello Ann",
        body_html=html,
    )
    for filename, data, mime_type in files:
        attachment_store(owner=draft, source=data, filename=filename, mime_type=mime_type)
    email = email_send(email=draft, actor=sender)
    assert email_deliver(email_id=email.pk, owner="test").outcome == "sent"
    return Email.objects.get(pk=email.pk)


def names(outbox_dir) -> list[str]:
    return sorted((p.name for p in outbox_dir.glob("*.eml")), reverse=True)


def test_the_list_shows_newest_first_from_the_headers_only(outbox, owner, monkeypatch, staff):
    first = deliver(owner, subject="First")
    second = deliver(owner, subject="Second")
    # The list must not parse whole messages: a full parse here would fail the page.
    monkeypatch.setattr("activities.outbox.BytesParser", None)
    page = signed_in(staff).get("/outbox/")
    assert page.status_code == 200
    rows = page.context["messages_on_page"]
    assert [m.subject for m in rows] == [second.subject, first.subject]
    assert rows[0].sender == "Alice Archer <alice@staff.example.com>"
    assert rows[0].to == "Ann Lee <ann@example.com>"
    assert rows[0].date is not None
    html = page.content.decode()
    assert f'href="/outbox/{names(outbox)[0]}/"' in html
    assert 'href="/outbox/" aria-current="page">Outbox folder</a>' in html


def test_the_list_is_paginated(outbox, owner, monkeypatch, staff):
    monkeypatch.setattr("activities.views.outbox.PAGE_SIZE", 2)
    for n in range(3):
        deliver(owner, subject=f"Message {n}")
    client = signed_in(staff)
    one = client.get("/outbox/")
    assert len(one.context["messages_on_page"]) == 2 and "Page 1 of 2 · 3 messages" in (
        one.content.decode()
    )
    two = client.get("/outbox/?page=2")
    assert [m.subject for m in two.context["messages_on_page"]][0].startswith("Message 0")


def test_an_empty_or_missing_folder_lists_nothing(outbox, staff):
    page = signed_in(staff).get("/outbox/")
    assert page.status_code == 200 and "No messages yet." in page.content.decode()


def test_a_message_shows_its_headers_body_frame_and_parts(outbox, owner, staff):
    email = deliver(
        owner,
        html='<p>Hi <img src="https://tracker.example/pixel.gif" alt=""></p><script>x()</script>',
        files=[("terms.pdf", PDF, "application/pdf")],
    )
    name = names(outbox)[0]
    client = signed_in(staff)
    page = client.get(f"/outbox/{name}/")
    assert page.status_code == 200
    html = page.content.decode()
    for text in (
        email.subject,
        "Alice Archer &lt;alice@staff.example.com&gt;",
        "carl@example.org",
        email.message_id.replace("<", "&lt;").replace(">", "&gt;"),
        "hidden@example.net",  # the envelope, Bcc included
        "1 remote image was blocked",
        f'src="/outbox/{name}/body/"',
        'sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"',
        f'href="/outbox/{name}/source/"',
        "terms.pdf",
    ):
        assert text in html, text
    assert "<dt>Bcc</dt>" not in html

    body = client.get(f"/outbox/{name}/body/")
    assert body.status_code == 200
    assert "script-src 'none'" in body["Content-Security-Policy"]
    assert '<p>Hi <img alt=""></p>' in body.content.decode()
    assert "x()" not in body.content.decode() and "tracker.example" not in body.content.decode()
    with_images = client.get(f"/outbox/{name}/body/?images=1").content.decode()
    assert "https://tracker.example/pixel.gif" in with_images
    asked = client.get(f"/outbox/{name}/?images=1").content.decode()
    assert f'src="/outbox/{name}/body/?images=1"' in asked and "Remote images are shown" in asked


def test_each_part_downloads_as_an_attachment_byte_for_byte(outbox, owner, staff):
    deliver(owner, files=[("terms.pdf", PDF, "application/pdf")])
    name = names(outbox)[0]
    client = signed_in(staff)
    page = client.get(f"/outbox/{name}/")
    (part,) = page.context["m"].parts
    response = client.get(f"/outbox/{name}/parts/{part.index}/")
    assert response.status_code == 200
    assert response.content == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="terms.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"/outbox/{name}/parts/0/").status_code == 404  # the multipart itself
    assert client.get(f"/outbox/{name}/parts/99/").status_code == 404


def test_view_source_is_the_file_as_plain_text(outbox, owner, staff):
    deliver(owner)
    name = names(outbox)[0]
    response = signed_in(staff).get(f"/outbox/{name}/source/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    data = b"".join(response.streaming_content)
    assert data == (outbox / name).read_bytes()
    message = message_from_bytes(data, policy=policy.default)
    assert message["Subject"].startswith("Quarterly figures")


def test_names_outside_the_folder_listing_are_404(outbox, owner, tmp_path, staff):
    deliver(owner)
    secret = tmp_path / "secret.eml"
    secret.write_bytes(b"Subject: secret\r\n\r\nsecret")
    (outbox / "link.eml").symlink_to(secret)
    (outbox / ".half-written.eml.tmp").write_bytes(b"Subject: partial\r\n\r\n")
    client = signed_in(staff)
    for url in (
        "/outbox/../",
        "/outbox/..%2Fsecret.eml/",
        "/outbox/%2Fetc%2Fpasswd/",
        f"/outbox/{secret}/",
        "/outbox/%2E%2E/source/",
        "/outbox/link.eml/",
        "/outbox/link.eml/source/",
        "/outbox/.half-written.eml.tmp/",
        "/outbox/nothing.eml/body/",
        "/outbox/nothing.eml/parts/1/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"secret" not in response.content
    listed = [m.name for m in client.get("/outbox/").context["messages_on_page"]]
    assert "link.eml" not in listed and len(listed) == 1


def test_without_the_outbox_backend_the_page_says_where_mail_goes(settings, staff):
    settings.EMAIL_BACKEND = "activities.mail.SMTPBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "mail.example.com", 2525
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    client = signed_in(staff)
    page = client.get("/outbox/")
    assert page.status_code == 200
    assert "messages go to the SMTP server mail.example.com:2525." in page.content.decode()
    assert 'href="/outbox/"' not in page.content.decode()  # no nav link either
    detail = client.get("/outbox/20250101T000000000000-abcdef01.eml/")
    assert detail.status_code == 404 and "mail.example.com:2525" in detail.content.decode()


def test_only_staff_may_look_and_anonymous_users_sign_in_first(outbox, owner):
    deliver(owner)
    name = names(outbox)[0]
    client = signed_in(owner)  # her own mail is in it, but the folder holds everyone's
    for url in ("/outbox/", f"/outbox/{name}/", f"/outbox/{name}/source/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "for staff accounts (is_staff)" in response.content.decode()
    assert 'href="/outbox/"' not in client.get("/mail/").content.decode()
    assert Client().get("/outbox/")["Location"] == "/sign-in/?next=/outbox/"
