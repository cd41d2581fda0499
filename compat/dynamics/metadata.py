"""The service document (``GET /api/data/v9.2/``) and ``$metadata``: the CSDL (OData v4
EDMX) of what this adapter serves, in Dataverse's namespace ``Microsoft.Dynamics.CRM``
with its alias ``mscrm``.

The document describes only the entity types, properties and actions the adapter
answers (a subset of Dataverse's), with the parameter and return types of the Web API
reference, so that an OData client generating its classes from it calls nothing that
is not there. It depends on no request and no row, so it is built once per process.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from xml.etree import ElementTree as ET

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from .entities import ATTACHMENT_PROPERTIES, EMAIL_PROPERTIES
from .odata import DynamicsView, context_url
from .views import TAG, documented

NAMESPACE = "Microsoft.Dynamics.CRM"
ALIAS = "mscrm"
CONTAINER = "System"
EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"

# (name, type, nullable); the key property of each entity type comes first.
Props = list[tuple[str, str, bool]]

# The types of the properties the emails and activitymimeattachments sets answer (their
# names come from compat.dynamics.entities, so the document follows what is served);
# a lookup (``_x_value``) is a GUID, any other name not listed here a string.
PROPERTY_TYPES = {
    "statecode": "Edm.Int32",
    "statuscode": "Edm.Int32",
    "prioritycode": "Edm.Int32",
    "attachmentcount": "Edm.Int32",
    "filesize": "Edm.Int32",
    "attachmentnumber": "Edm.Int32",
    "directioncode": "Edm.Boolean",
    "readreceiptrequested": "Edm.Boolean",
    "deliveryreceiptrequested": "Edm.Boolean",
    "createdon": "Edm.DateTimeOffset",
    "modifiedon": "Edm.DateTimeOffset",
    "senton": "Edm.DateTimeOffset",
    "scheduledstart": "Edm.DateTimeOffset",
}


def _typed(names: tuple[str, ...]) -> Props:
    """``names`` (the key first) with their types; only the key is not nullable."""
    return [
        (
            name,
            "Edm.Guid"
            if position == 0 or (name.startswith("_") and name.endswith("_value"))
            else PROPERTY_TYPES.get(name, "Edm.String"),
            position != 0,
        )
        for position, name in enumerate(names)
    ]


ENTITY_TYPES: dict[str, Props] = {
    "email": _typed(EMAIL_PROPERTIES),
    "activityparty": [
        ("activitypartyid", "Edm.Guid", False),
        ("participationtypemask", "Edm.Int32", True),
        ("addressused", "Edm.String", True),
        ("_activityid_value", "Edm.Guid", True),
        ("_partyid_value", "Edm.Guid", True),
    ],
    "activitymimeattachment": _typed(ATTACHMENT_PROPERTIES),
    # What DeliverIncomingEmail's Attachments are (Collection(mscrm.attachment)).
    "attachment": [
        ("attachmentid", "Edm.Guid", False),
        ("filename", "Edm.String", True),
        ("mimetype", "Edm.String", True),
        ("body", "Edm.String", True),
        ("filesize", "Edm.Int32", True),
    ],
    "systemuser": [
        ("systemuserid", "Edm.Guid", False),
        ("fullname", "Edm.String", True),
        ("firstname", "Edm.String", True),
        ("lastname", "Edm.String", True),
        ("domainname", "Edm.String", True),
        ("internalemailaddress", "Edm.String", True),
        ("emailrouteraccessapproval", "Edm.Int32", True),
        ("isdisabled", "Edm.Boolean", True),
    ],
    "queue": [
        ("queueid", "Edm.Guid", False),
        ("name", "Edm.String", True),
        ("emailaddress", "Edm.String", True),
        ("emailrouteraccessapproval", "Edm.Int32", True),
        ("createdon", "Edm.DateTimeOffset", True),
    ],
    "organization": [
        ("organizationid", "Edm.Guid", False),
        ("name", "Edm.String", True),
        ("requireapprovalforuseremail", "Edm.Boolean", True),
        ("requireapprovalforqueueemail", "Edm.Boolean", True),
        ("modifiedon", "Edm.DateTimeOffset", True),
    ],
    "template": [
        ("templateid", "Edm.Guid", False),
        ("title", "Edm.String", True),
        ("subject", "Edm.String", True),
        ("body", "Edm.String", True),
        ("templatetypecode", "Edm.String", True),
        ("languagecode", "Edm.Int32", True),
    ],
    # Bound by reference (Regarding, Target, @odata.bind) and the recipients of
    # SendBulkMail's query; no entity set of their own here.
    "contact": [
        ("contactid", "Edm.Guid", False),
        ("fullname", "Edm.String", True),
        ("firstname", "Edm.String", True),
        ("lastname", "Edm.String", True),
        ("emailaddress1", "Edm.String", True),
        ("address1_city", "Edm.String", True),
        ("donotemail", "Edm.Boolean", True),
        ("donotbulkemail", "Edm.Boolean", True),
        ("createdon", "Edm.DateTimeOffset", True),
        ("_parentcustomerid_value", "Edm.Guid", True),
    ],
    "account": [
        ("accountid", "Edm.Guid", False),
        ("name", "Edm.String", True),
        ("emailaddress1", "Edm.String", True),
        ("address1_city", "Edm.String", True),
    ],
}

NAVIGATION: dict[str, list[tuple[str, str]]] = {
    "email": [
        ("email_activity_parties", "Collection(mscrm.activityparty)"),
        ("email_activity_mime_attachment", "Collection(mscrm.activitymimeattachment)"),
    ],
}

# entity set -> entity type, in the order of the service document.
ENTITY_SETS: dict[str, str] = {
    "emails": "email",
    "activitymimeattachments": "activitymimeattachment",
    "systemusers": "systemuser",
    "queues": "queue",
    "organizations": "organization",
    "templates": "template",
}

COMPLEX_TYPES: dict[str, tuple[str | None, bool, Props]] = {
    # name: (base type, abstract, properties)
    "QueryBase": (None, True, []),
    "FetchExpression": ("mscrm.QueryBase", False, [("Query", "Edm.String", True)]),
    "SendEmailResponse": (None, False, [("Subject", "Edm.String", True)]),
    "GetTrackingTokenEmailResponse": (None, False, [("TrackingToken", "Edm.String", True)]),
    "WhoAmIResponse": (
        None,
        False,
        [
            ("BusinessUnitId", "Edm.Guid", False),
            ("UserId", "Edm.Guid", False),
            ("OrganizationId", "Edm.Guid", False),
        ],
    ),
    "BackgroundSendEmailResponse": (
        None,
        False,
        [("HasAttachments", "Collection(Edm.Boolean)", True)],
    ),
}
COMPLEX_NAVIGATION = {
    "BackgroundSendEmailResponse": [("EntityCollection", "Collection(mscrm.email)")]
}

# name: (binding parameter (name, type) or None, [(parameter, type, nullable)], return type)
ACTIONS: dict[str, tuple[tuple[str, str] | None, Props, str | None]] = {
    "SendEmail": (
        ("entity", "mscrm.email"),
        [("IssueSend", "Edm.Boolean", False), ("TrackingToken", "Edm.String", True)],
        "mscrm.SendEmailResponse",
    ),
    "SendEmailFromTemplate": (
        None,
        [
            ("TemplateId", "Edm.Guid", False),
            ("Regarding", "mscrm.crmbaseentity", False),
            ("Target", "mscrm.crmbaseentity", False),
        ],
        "mscrm.email",
    ),
    "InstantiateTemplate": (
        None,
        [
            ("TemplateId", "Edm.Guid", False),
            ("ObjectType", "Edm.String", False),
            ("ObjectId", "Edm.Guid", False),
        ],
        "Collection(mscrm.crmbaseentity)",
    ),
    "SendBulkMail": (
        None,
        [
            ("Sender", "mscrm.crmbaseentity", False),
            ("TemplateId", "Edm.Guid", False),
            ("RegardingType", "Edm.String", False),
            ("RegardingId", "Edm.Guid", False),
            ("Query", "mscrm.QueryBase", True),
        ],
        None,
    ),
    "BackgroundSendEmail": (
        None,
        [("Query", "mscrm.QueryBase", True)],
        "mscrm.BackgroundSendEmailResponse",
    ),
    "GetTrackingTokenEmail": (
        None,
        [("Subject", "Edm.String", True)],
        "mscrm.GetTrackingTokenEmailResponse",
    ),
    "DeliverIncomingEmail": (
        ("entityset", "Collection(mscrm.email)"),
        [
            ("MessageId", "Edm.String", False),
            ("Subject", "Edm.String", True),
            ("From", "Edm.String", False),
            ("To", "Edm.String", False),
            ("Cc", "Edm.String", False),
            ("Bcc", "Edm.String", False),
            ("ReceivedOn", "Edm.DateTimeOffset", False),
            ("SubmittedBy", "Edm.String", False),
            ("Importance", "Edm.String", False),
            ("Body", "Edm.String", False),
            ("Attachments", "Collection(mscrm.attachment)", False),
            ("ExtraProperties", "mscrm.crmbaseentity", True),
            ("ValidateBeforeCreate", "Edm.Boolean", True),
        ],
        "mscrm.email",
    ),
}


# Functions (GET, no side effects): name -> return type. WhoAmI is what Dataverse's
# clients (the SDK's ServiceClient, XrmToolBox, PowerShell) call first.
FUNCTIONS: dict[str, str] = {"WhoAmI": "mscrm.WhoAmIResponse"}


def _el(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{EDM}}}{tag}", attrib)


def _property(parent: ET.Element, name: str, type_: str, nullable: bool) -> None:
    attrib = {"Name": name, "Type": type_}
    if not nullable:
        attrib["Nullable"] = "false"
    _el(parent, "Property", **attrib)


@cache
def metadata_document() -> bytes:
    """The CSDL document, well-formed UTF-8 XML (built once)."""
    ET.register_namespace("edmx", EDMX)
    ET.register_namespace("", EDM)
    root = ET.Element(f"{{{EDMX}}}Edmx", {"Version": "4.0"})
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = _el(services, "Schema", Namespace=NAMESPACE, Alias=ALIAS)

    _el(schema, "EntityType", Name="crmbaseentity", Abstract="true")
    for name, props in ENTITY_TYPES.items():
        entity = _el(schema, "EntityType", Name=name, BaseType="mscrm.crmbaseentity")
        key = _el(entity, "Key")
        _el(key, "PropertyRef", Name=props[0][0])
        for prop in props:
            _property(entity, *prop)
        for nav_name, nav_type in NAVIGATION.get(name, []):
            _el(entity, "NavigationProperty", Name=nav_name, Type=nav_type)

    for name, (base, abstract, props) in COMPLEX_TYPES.items():
        attrib = {"Name": name}
        if base:
            attrib["BaseType"] = base
        if abstract:
            attrib["Abstract"] = "true"
        complex_type = _el(schema, "ComplexType", **attrib)
        for prop in props:
            _property(complex_type, *prop)
        for nav_name, nav_type in COMPLEX_NAVIGATION.get(name, []):
            _el(complex_type, "NavigationProperty", Name=nav_name, Type=nav_type)

    for name, (binding, params, returns) in ACTIONS.items():
        action = _el(schema, "Action", Name=name, IsBound="true" if binding else "false")
        if binding:
            _el(action, "Parameter", Name=binding[0], Type=binding[1], Nullable="false")
        for param_name, param_type, nullable in params:
            attrib = {"Name": param_name, "Type": param_type}
            if not nullable:
                attrib["Nullable"] = "false"
            _el(action, "Parameter", **attrib)
        if returns:
            _el(action, "ReturnType", Type=returns, Nullable="false")

    for name, returns in FUNCTIONS.items():
        function = _el(schema, "Function", Name=name, IsBound="false")
        _el(function, "ReturnType", Type=returns, Nullable="false")

    container = _el(schema, "EntityContainer", Name=CONTAINER)
    for set_name, type_name in ENTITY_SETS.items():
        entity_set = _el(container, "EntitySet", Name=set_name, EntityType=f"mscrm.{type_name}")
        if set_name == "emails":
            _el(
                entity_set,
                "NavigationPropertyBinding",
                Path="email_activity_mime_attachment",
                Target="activitymimeattachments",
            )
    for name, (binding, _params, _returns) in ACTIONS.items():
        if binding is None:
            _el(container, "ActionImport", Name=name, Action=f"mscrm.{name}")
    for name in FUNCTIONS:
        _el(container, "FunctionImport", Name=name, Function=f"mscrm.{name}")

    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


_XML: dict[Any, Any] = {
    (200, "application/xml"): OpenApiTypes.STR,
    **{status: answer for status, answer in documented().items() if status != 200},
}


class MetadataView(DynamicsView):
    """``$metadata``: the CSDL, as ``application/xml``."""

    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_metadata",
        summary="The CSDL (OData v4 $metadata) of the Dynamics 365 adapter",
        responses=_XML,
    )
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(metadata_document(), content_type="application/xml; charset=utf-8")


class ServiceDocumentView(DynamicsView):
    """The service document: every entity set, as OData v4 requires at the root."""

    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_service_document",
        summary="The OData service document: the adapter's entity sets",
        responses=documented(),
    )
    def get(self, request: Request) -> Response:
        body: dict[str, Any] = {
            "@odata.context": context_url(request, "").removesuffix("#"),
            "value": [{"name": name, "kind": "EntitySet", "url": name} for name in ENTITY_SETS],
        }
        return Response(body)
