"""Shared data of the SuperOffice tests."""

from __future__ import annotations

# SuperOffice's documented sample request (docs.superoffice.com, EMail agent
# SendEMails), as published: its recipients are empty placeholder objects.
DOCUMENTED_SAMPLE = {
    "OutgoingConnectionInfo": None,
    "Emails": [
        {
            "To": [{}, {}],
            "Cc": [{}, {}],
            "Bcc": [{}, {}],
            "Subject": "quaerat",
            "HTMLBody": "voluptates",
            "From": None,
            "Sent": "2024-10-29T14:28:21.9460219+01:00",
            "Size": 563,
            "Priority": "High",
            "Flags": "Answered",
            "MessageID": "vel",
            "PlainBody": "aspernatur",
            "IsSent": True,
            "EMailSOInfo": None,
            "ServerId": 876,
            "Attachments": [{}, {}],
            "CustomHeaderList": [{}, {}],
            "FolderName": "Hermiston-Volkman",
            "EmailItemId": 531,
            "AccountId": 100,
            "ReceivedAt": "2018-06-27T14:28:21.9460219+02:00",
            "InReplyTo": None,
            "RepliedAt": "2010-11-01T14:28:21.9460219+01:00",
            "HasCalendarData": True,
            "CalMethod": "Add",
            "CalReplyStatus": "Accepted",
        }
    ],
    "SentItemsConnectionInfo": None,
}
