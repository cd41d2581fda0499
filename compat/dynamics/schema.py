"""The OpenAPI paths of the Dynamics routes, with Dataverse's key syntax.

A key in parentheses (``emails(<guid>)``) is read by the schema generator as a regex
group and shown as ``emails{var}``; this preprocessing hook (drf-spectacular's
``PREPROCESSING_HOOKS``) writes it back as ``emails({guid})``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .odata import SERVICE_ROOT


def odata_key_paths(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    fixed = []
    for path, path_regex, method, callback in endpoints:
        if path.startswith(f"/{SERVICE_ROOT.strip('/')}/"):
            # A function's empty parameter list, written as a regex: WhoAmI\(\).
            path = path.replace("{var}", "({guid})").replace("\\(\\)", "()")
        fixed.append((path, path_regex, method, callback))
    return fixed


# --- request bodies, for the schema only ------------------------------------------------
# The views read the bodies themselves (entities.py, actions.py) and refuse any other
# property; these say the same to the schema (``additionalProperties: false`` through
# ``common.api.serializers.no_additional_properties``, as for /api/v1/).


def _body(
    name: str, fields: dict[str, serializers.Field], doc: str
) -> type[serializers.Serializer]:
    return type(name, (serializers.Serializer,), {"__doc__": doc, **fields})


def _text(help_text: str = "") -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text=help_text
    )


def _bind(entity_set: str, *, nullable: bool = False) -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_null=nullable, help_text=f"a reference, /{entity_set}(<guid>)"
    )


ActivityPartyBody = _body(
    "DynamicsActivityParty",
    {
        "participationtypemask": serializers.IntegerField(
            min_value=1, max_value=4, help_text="1 from, 2 to, 3 cc, 4 bcc"
        ),
        "addressused": _text("the address (for a recipient without a record, required)"),
        "partyid_contact@odata.bind": _bind("contacts"),
        "partyid_systemuser@odata.bind": _bind("systemusers"),
        "partyid_queue@odata.bind": _bind("queues"),
        "partyid_account@odata.bind": _bind("accounts"),
    },
    "An activity party: the sender (a system user or queue) or a recipient.",
)

EmailBody = _body(
    "DynamicsEmail",
    {
        "subject": _text(),
        "description": _text("the HTML body"),
        "prioritycode": serializers.IntegerField(
            required=False, min_value=0, max_value=2, help_text="0 low, 1 normal, 2 high"
        ),
        "trackingtoken": _text(),
        "inreplyto": _text(),
        "scheduledstart": serializers.DateTimeField(required=False, allow_null=True),
        "readreceiptrequested": serializers.BooleanField(required=False),
        "deliveryreceiptrequested": serializers.BooleanField(required=False),
        "statuscode": serializers.IntegerField(
            required=False,
            allow_null=True,
            help_text="on update only: 3 Sent / 8 Failed report a claimed email (with "
            "If-Match), 5 Canceled cancels",
        ),
        "statecode": serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=2
        ),
        "messageid": _text("with a statuscode report: the id the sender gave the message"),
        "regardingobjectid_contact@odata.bind": _bind("contacts", nullable=True),
        "regardingobjectid_account@odata.bind": _bind("accounts", nullable=True),
        "regardingobjectid_systemuser@odata.bind": _bind("systemusers", nullable=True),
        "regardingobjectid_queue@odata.bind": _bind("queues", nullable=True),
        "email_activity_parties": ActivityPartyBody(many=True, required=False),
    },
    "An email entity (create: a draft; update: a draft or failed email).",
)

AttachmentBody = _body(
    "DynamicsActivityMimeAttachment",
    {
        "objectid_email@odata.bind": _bind("emails"),
        "objectid_activitypointer@odata.bind": _bind("activitypointers"),
        "objectid_template@odata.bind": _bind("templates"),
        "objecttypecode": _text("email or template, as the owner's reference says"),
        "filename": _text(),
        "mimetype": _text(),
        "subject": _text(),
        "body": _text("the bytes, base64"),
        "attachmentid@odata.bind": _bind("attachments"),
    },
    "An attachment: the bytes (body), or an existing file by attachmentid@odata.bind.",
)

SendEmailBody = _body(
    "DynamicsSendEmail",
    {
        "IssueSend": serializers.BooleanField(required=False),
        "TrackingToken": _text(),
    },
    "SendEmail's parameters.",
)

SendEmailFromTemplateBody = _body(
    "DynamicsSendEmailFromTemplate",
    {
        "TemplateId": serializers.UUIDField(),
        "Regarding": serializers.DictField(
            required=False,
            allow_null=True,
            help_text='{"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": guid}',
        ),
        "Target": serializers.DictField(
            help_text='{"@odata.type": "Microsoft.Dynamics.CRM.email", "email_activity_parties": [...]}'
        ),
    },
    "SendEmailFromTemplate's parameters.",
)

InstantiateTemplateBody = _body(
    "DynamicsInstantiateTemplate",
    {
        "TemplateId": serializers.UUIDField(),
        "ObjectType": serializers.ChoiceField(
            choices=["contact", "account", "systemuser", "queue"]
        ),
        "ObjectId": serializers.UUIDField(),
    },
    "InstantiateTemplate's parameters.",
)

PageInfoBody = _body(
    "DynamicsPageInfo",
    {"Count": serializers.IntegerField(required=False, min_value=1, max_value=500)},
    "How many emails to claim at most.",
)
QueryBody = _body(
    "DynamicsQueryExpression",
    {
        "@odata.type": _text(),
        "EntityName": serializers.ChoiceField(choices=["email"], required=False),
        "PageInfo": PageInfoBody(required=False, allow_null=True),
    },
    "The claim's query: only EntityName and PageInfo.Count are read.",
)
BackgroundSendEmailBody = _body(
    "DynamicsBackgroundSendEmail",
    {"Query": QueryBody(required=False, allow_null=True)},
    "BackgroundSendEmail's parameters.",
)

GetTrackingTokenEmailBody = _body(
    "DynamicsGetTrackingTokenEmail",
    {"Subject": _text()},
    "GetTrackingTokenEmail's parameters (Subject is the one read).",
)
