"""SuperOffice's SendEMails in XML: SuperOffice's data-contract shape read safely
(defusedxml), answered in XML when the client asks for it."""

from __future__ import annotations

import base64
from xml.etree.ElementTree import fromstring

import pytest

from activities.models import Email, PartyRole, Priority
from tests.api import client_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/Agents/EMail/SendEMails"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}nil"

BODY = """<?xml version="1.0" encoding="utf-8"?>
<SendEMails xmlns:i="http://www.w3.org/2001/XMLSchema-instance"
            xmlns="http://www.superoffice.net/ws/crm/NetServer/Services88">
  <OutgoingConnectionInfo i:nil="true" />
  <Emails>
    <EMailEntity>
      <To>
        <EMailAddress><Address>ann@example.com</Address><Name>Ann Lee</Name></EMailAddress>
        <EMailAddress><Address>bo@example.com</Address><Name /></EMailAddress>
      </To>
      <Cc />
      <Subject>Figures &amp; plans</Subject>
      <PlainBody>Hello</PlainBody>
      <Priority>2</Priority>
      <Attachments>
        <EMailAttachment>
          <Filename>a.bin</Filename>
          <Type>application/octet-stream</Type>
          <Stream>{stream}</Stream>
        </EMailAttachment>
      </Attachments>
      <EMailSOInfo i:nil="true" />
    </EMailEntity>
    <EMailEntity>
      <To><EMailAddress><Name>Placeholder</Name></EMailAddress></To>
      <Subject>Never</Subject>
    </EMailEntity>
  </Emails>
  <SentItemsConnectionInfo i:nil="true" />
</SendEMails>
"""
BYTES = bytes(range(256)) * 4


def post_xml(user, body: str | bytes, *, accept: str = "application/xml", **kwargs):
    return client_for(user).generic(
        "POST", URL, body, content_type="application/xml", HTTP_ACCEPT=accept, **kwargs
    )


def test_an_xml_batch_is_read_and_answered_in_xml(owner):
    response = post_xml(owner, BODY.replace("{stream}", base64.b64encode(BYTES).decode()))

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/xml")
    root = fromstring(response.content)
    assert root.tag == "ArrayOfEMailEntity"
    sent, refused = root.findall("EMailEntity")
    email = Email.objects.get()
    assert sent.findtext("IsSent") == "true"
    assert sent.findtext("ServerId") == str(email.pk)
    assert [a.findtext("Address") for a in sent.find("To")] == [
        "ann@example.com",
        "bo@example.com",
    ]
    assert sent.find("To")[0].tag == "EMailAddress"
    assert sent.find("InReplyTo").get(XSI) == "true"
    assert refused.findtext("IsSent") == "false"
    assert "the recipient has no Address" in refused.find("SendError").findtext("Message")
    assert email.subject.startswith("Figures & plans")
    assert email.priority == Priority.HIGH
    assert {p.address for p in email.parties.filter(role=PartyRole.TO)} == {
        "ann@example.com",
        "bo@example.com",
    }
    with email.attachments.get().blob.file.open("rb") as stored:
        assert stored.read() == BYTES


def test_an_xml_refusal_is_answered_in_xml(owner):
    response = post_xml(owner, "<SendEMails><Emails /><Colour>red</Colour></SendEMails>")

    assert response.status_code == 400
    root = fromstring(response.content)
    assert root.tag == "ExceptionInfo"
    assert root.findtext("ErrorType") == "invalid"
    assert "request.Colour" in root.findtext("Message")


def test_json_in_and_xml_out(owner):
    response = client_for(owner).post(
        URL,
        {"Emails": [{"To": [{"Address": "ann@example.com"}], "Subject": "Hi"}]},
        format="json",
        HTTP_ACCEPT="text/xml",
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert fromstring(response.content).find("EMailEntity").findtext("IsSent") == "true"


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("<SendEMails><Emails>", "XML parse error"),
        (
            '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            "<SendEMails><Emails><EMailEntity><Subject>&b;</Subject></EMailEntity></Emails>"
            "</SendEMails>",
            "XML parse error",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<SendEMails><Emails /></SendEMails>",
            "XML parse error",
        ),
        ("<a>" * 100 + "</a>" * 100, "nested deeper"),
        ("<SendEMails><Emails /><Emails /></SendEMails>", "given twice"),
    ],
)
def test_malformed_or_dangerous_xml_is_a_400_and_nothing_is_written(owner, body, names):
    response = post_xml(owner, body)

    assert response.status_code == 400
    assert names in fromstring(response.content).findtext("Message")
    assert Email.objects.count() == 0


def test_an_xml_body_over_the_limit_is_refused(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    body = "<SendEMails><Emails /><Pad>" + "x" * 3000 + "</Pad></SendEMails>"

    response = post_xml(owner, body)

    assert 400 <= response.status_code < 500
    assert Email.objects.count() == 0


def test_characters_xml_cannot_hold_are_replaced_in_the_answer(owner):
    body = "<SendEMails><Emails><EMailEntity><Priority>\u0001</Priority></EMailEntity>"
    response = post_xml(owner, body.encode() + b"</Emails></SendEMails>")

    # \u0001 is not XML either: the parser refuses it, and the answer is well formed
    assert response.status_code == 400
    assert fromstring(response.content).findtext("ErrorType") == "parse_error"
