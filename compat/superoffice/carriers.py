"""SuperOffice's carriers as a request sends them: shape and types, nothing more.

The property names are SuperOffice's (``EMailEntity``, ``EMailAddress``,
``EMailAttachment``, ``EMailCustomHeader``, ``EMailConnectionInfo`` of the EMail
agent). SuperOffice's own server reads them in any letter case, as .NET clients send
them; ``canonical_keys`` gives each object its documented spelling first. Properties
the server sets (``Sent``, ``MessageID``, ``EMailSOInfo``, ...) are taken and ignored,
as SuperOffice does, so an entity read back from a call can be sent again; any other
name is refused (400), never dropped in silence. The rules stay in the services.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from common.api.serializers import StrictSerializer

MAX_EMAILS_PER_CALL = 100
MAX_RECIPIENTS_PER_ROLE = 500
MAX_ATTACHMENTS_PER_EMAIL = 100
MAX_CUSTOM_HEADERS = 50


def _ignored(help_text: str = "set by the server; taken and ignored") -> serializers.JSONField:
    return serializers.JSONField(required=False, allow_null=True, help_text=help_text)


def _text(max_length: int | None = None, help_text: str = "") -> serializers.CharField:
    field = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        help_text=help_text,
    )
    if max_length is not None:
        field = serializers.CharField(
            required=False,
            allow_null=True,
            allow_blank=True,
            trim_whitespace=False,
            help_text=help_text,
            max_length=max_length,
        )
    return field


# SuperOffice sends these on every carrier.
_CARRIER_EXTRAS = ("TableRight", "FieldProperties")


@extend_schema_serializer(component_name="SuperOfficeEMailAddress")
class EMailAddressIn(StrictSerializer):
    Address = _text(320, "the e-mail address; required for a recipient")
    Name = _text(200, "the display name")
    ContactId = _ignored("SuperOffice's company id; ignored")
    ContactName = _ignored("ignored")
    PersonId = _ignored("SuperOffice's person id; ignored")
    PersonName = _ignored("ignored")
    AssociateId = _ignored("SuperOffice's user id; ignored")
    EmailId = _ignored("ignored")
    DuplicatePersonIds = _ignored("ignored")
    TableRight = _ignored()
    FieldProperties = _ignored()


@extend_schema_serializer(component_name="SuperOfficeEMailAttachment")
class EMailAttachmentIn(StrictSerializer):
    Filename = _text(1000, "the file name")
    Type = _text(255, "the Content-Type; guessed from the file name when left out")
    Stream = _text(None, "the bytes, base64")
    Disposition = _text(100, "attachment or inline")
    Description = _text(400, "name or description; ignored")
    Size = _ignored("the size; the server measures the bytes")
    Encoding = _ignored("Content-Transfer-Encoding; the server chooses")
    Id = _ignored("Content-ID; ignored")
    IsSafeFileExtension = _ignored()
    TableRight = _ignored()
    FieldProperties = _ignored()


@extend_schema_serializer(component_name="SuperOfficeEMailCustomHeader")
class EMailCustomHeaderIn(StrictSerializer):
    Name = _text(200, "the header's name")
    Values = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        allow_null=True,
        max_length=20,
        help_text="one header line per value",
    )
    TableRight = _ignored()
    FieldProperties = _ignored()


# Lists and objects are read one item at a time (``validated``), so that a refusal names
# the item's path; the schema still shows each item's carrier.


@extend_schema_field(EMailAddressIn(many=True, allow_null=True))
class _AddressList(serializers.ListField):
    pass


@extend_schema_field(EMailAddressIn(allow_null=True))
class _AddressObject(serializers.JSONField):
    pass


@extend_schema_field(EMailAttachmentIn(many=True, allow_null=True))
class _AttachmentList(serializers.ListField):
    pass


@extend_schema_field(EMailCustomHeaderIn(many=True, allow_null=True))
class _CustomHeaderList(serializers.ListField):
    pass


def _addresses() -> serializers.ListField:
    return _AddressList(
        child=serializers.JSONField(),
        required=False,
        allow_null=True,
        max_length=MAX_RECIPIENTS_PER_ROLE,
        help_text="EMailAddress objects",
    )


@extend_schema_serializer(component_name="SuperOfficeEMailEntity")
class EMailEntityIn(StrictSerializer):
    To = _addresses()
    Cc = _addresses()
    Bcc = _addresses()
    Subject = _text(None, "the subject")
    HTMLBody = _text(None, "the body in HTML")
    PlainBody = _text(None, "the body in plain text")
    From = _AddressObject(
        required=False,
        allow_null=True,
        help_text="EMailAddress: who sends it; left out, the caller. An address of a queue "
        "the caller is a member of sends as the queue",
    )
    Priority = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="EMailPriority: NoPriority, Highest, High, Normal, Low, Lowest (or 0 to 5)",
    )
    Attachments = _AttachmentList(
        child=serializers.JSONField(),
        required=False,
        allow_null=True,
        max_length=MAX_ATTACHMENTS_PER_EMAIL,
        help_text="EMailAttachment objects with Stream",
    )
    CustomHeaderList = _CustomHeaderList(
        child=serializers.JSONField(),
        required=False,
        allow_null=True,
        max_length=MAX_CUSTOM_HEADERS,
        help_text="EMailCustomHeader objects",
    )
    Sent = _ignored()
    Size = _ignored()
    Flags = _ignored()
    MessageID = _ignored()
    IsSent = _ignored()
    EMailSOInfo = _ignored()
    ServerId = _ignored()
    FolderName = _ignored()
    EmailItemId = _ignored()
    AccountId = _ignored()
    ReceivedAt = _ignored()
    InReplyTo = _ignored()
    RepliedAt = _ignored()
    HasCalendarData = _ignored()
    CalMethod = _ignored()
    CalReplyStatus = _ignored()
    TableRight = _ignored()
    FieldProperties = _ignored()


@extend_schema_serializer(component_name="SuperOfficeEMailConnectionInfo")
class EMailConnectionInfoIn(StrictSerializer):
    ServerName = _text(300, "host, or host:port, of the mail server")
    UserName = _text(300, "the user to log in as")
    Password = _text(1000, "never used: this server logs in with its own settings")
    Folder = _text(300, "ignored")
    UseSSL = serializers.BooleanField(required=False, allow_null=True)
    TableRight = _ignored()
    FieldProperties = _ignored()


@extend_schema_field(EMailConnectionInfoIn(allow_null=True))
class _ConnectionObject(serializers.JSONField):
    pass


@extend_schema_field(EMailEntityIn(many=True))
class _EntityList(serializers.ListField):
    pass


@extend_schema_serializer(component_name="SuperOfficeSendEMails")
class SendEMailsIn(StrictSerializer):
    """The body of ``SendEMails``: ``OutgoingConnectionInfo``, ``Emails``,
    ``SentItemsConnectionInfo``."""

    OutgoingConnectionInfo = _ConnectionObject(
        required=False,
        allow_null=True,
        help_text="EMailConnectionInfo; null, or one that names this server's own delivery",
    )
    Emails = _EntityList(
        child=serializers.JSONField(),
        max_length=MAX_EMAILS_PER_CALL,
        help_text="EMailEntity objects, each sent on its own",
    )
    SentItemsConnectionInfo = _ConnectionObject(
        required=False,
        allow_null=True,
        help_text="EMailConnectionInfo; null, or one that names this server's own delivery: "
        "every sent e-mail is kept here",
    )


def canonical_keys(data: Any, carrier: type[serializers.Serializer]) -> Any:
    """``data`` with each key spelled as ``carrier`` documents it, whatever its case
    (``subject`` and ``SUBJECT`` are ``Subject``). Keys the carrier lacks stay as given,
    so the carrier refuses them; two keys that are one property are refused here."""
    if not isinstance(data, Mapping):
        return data
    names = {str(name).lower(): str(name) for name in carrier().fields}
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = names.get(str(key).lower(), str(key))
        if name in result:
            raise serializers.ValidationError({name: ["given twice, in different letter cases"]})
        result[name] = value
    return result


def validated(data: Any, carrier: type[serializers.Serializer], *, label: str) -> dict[str, Any]:
    """The carrier's validated data, or ``ValidationError`` whose message names ``label``
    (``Emails[1].To[0]``): the path of the object in the request."""
    if not isinstance(data, Mapping):
        raise serializers.ValidationError(
            {label: [f"must be an object ({carrier.__name__.removesuffix('In')})"]}
        )
    try:
        serializer = carrier(data=canonical_keys(data, carrier))
        serializer.is_valid(raise_exception=True)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError(_prefixed(label, exc.detail)) from exc
    return dict(serializer.validated_data)


def _prefixed(label: str, detail: Any) -> dict[str, Any]:
    if isinstance(detail, Mapping):
        return {f"{label}.{key}": value for key, value in detail.items()}
    return {label: detail}


def input_text(detail: Any) -> str:
    """A ``ValidationError``'s detail as one sentence: ``path: message; path: message``."""
    if isinstance(detail, Mapping):
        return "; ".join(f"{key}: {input_text(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(input_text(item) for item in detail)
    return str(detail)
