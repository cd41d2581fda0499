"""Rendering templates for a record, in a locked-down engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import Lexer, TokenType, VariableDoesNotExist

from crm.models import Account, Contact, Queue, User
from crm.services import require_staff

from .. import conf
from ..errors import TemplateRenderError, ValidationFailed
from ..models import ActivityMimeAttachment, RecordType, Template
from ..sandbox import BLOCK_TAGS, BUDGET_ATTRIBUTE, RenderBudget, TemplateBudgetExceeded

MERGE_FIELDS = {
    "contact": ("first_name", "last_name", "full_name", "email", "city"),
    "account": ("name", "city", "email"),
    "user": ("first_name", "last_name", "full_name", "email"),
    "sender": ("name", "email"),
}


class _UnknownMergeField(str):
    """``string_if_invalid`` that turns any unknown variable into an error."""

    def __contains__(self, item: object) -> bool:
        return item == "%s"

    def __mod__(self, name: object) -> str:
        raise VariableDoesNotExist(f"unknown merge field {{{{ {name} }}}}")


class _SandboxEngine(Engine):
    # ``Engine`` adds its default builtins (load, include, extends, debug, url,
    # csrf_token, the safe filter ...) to whatever ``builtins`` it is given; only the
    # sandbox library may be in scope.
    default_builtins: list[str] = []


@cache
def _engine(autoescape: bool) -> Engine:
    return _SandboxEngine(
        dirs=[],
        app_dirs=False,
        libraries={},
        builtins=["activities.sandbox"],
        autoescape=autoescape,
        debug=True,  # keeps line numbers on errors
        string_if_invalid=_UnknownMergeField("!"),
        loaders=[("django.template.loaders.locmem.Loader", {})],
    )


@dataclass
class RenderedTemplate:
    subject: str
    body_html: str
    body_text: str
    attachments: list[ActivityMimeAttachment] = field(default_factory=list)


def _contact_fields(contact: Contact) -> dict[str, str]:
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "full_name": contact.full_name,
        "email": contact.email,
        "city": contact.city,
    }


def _account_fields(account: Account) -> dict[str, str]:
    return {"name": account.name, "city": account.city, "email": account.email}


def _user_fields(user: User) -> dict[str, str]:
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "full_name": user.full_name,
        "email": user.email,
    }


def merge_context(*, regarding: models.Model | None, sender: User | Queue | None) -> dict[str, Any]:
    """The only values a template sees: plain strings, never model instances."""
    contact = account = user = None
    if isinstance(regarding, Contact):
        contact = _contact_fields(regarding)
        if regarding.account is not None:
            account = _account_fields(regarding.account)
    elif isinstance(regarding, Account):
        account = _account_fields(regarding)
    elif isinstance(regarding, User):
        user = _user_fields(regarding)
    return merge_context_of(
        contact=contact, account=account, user=user, sender=sender_fields(sender)
    )


def sender_fields(sender: User | Queue | None) -> dict[str, str] | None:
    return None if sender is None else {"name": sender.display_name, "email": sender.email or ""}


# Fields of the record types not in play render empty rather than fail.
_EMPTY = {kind: dict.fromkeys(names, "") for kind, names in MERGE_FIELDS.items()}


def merge_context_of(
    *,
    contact: dict[str, str] | None = None,
    account: dict[str, str] | None = None,
    user: dict[str, str] | None = None,
    sender: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The context from the fields of each record (``MERGE_FIELDS``); bulk jobs build
    them from database rows without loading model instances."""
    return {
        "contact": contact or _EMPTY["contact"],
        "account": account or _EMPTY["account"],
        "user": user or _EMPTY["user"],
        "sender": sender or _EMPTY["sender"],
    }


def _line_of(exc: Exception) -> int | None:
    debug = getattr(exc, "template_debug", None)
    return debug.get("line") if debug else None


# What a filter raises on a value it cannot handle (``{{ contact.city|divisibleby:2 }}``):
# the template's fault, reported like a syntax error rather than as a server error.
FILTER_ERRORS = (ValueError, TypeError, ArithmeticError, LookupError)


@contextmanager
def _template_errors(part: str) -> Iterator[None]:
    """Turn what compiling or rendering ``part`` raises into a ``TemplateRenderError``."""
    try:
        yield
    except RecursionError as exc:  # what the nesting check did not foresee
        raise TemplateRenderError(
            f"template error in {part}: the template is nested too deeply to render",
            part=part,
        ) from exc
    except TemplateBudgetExceeded as exc:
        raise TemplateRenderError(f"template over its budget in {part}: {exc}", part=part) from exc
    except (TemplateSyntaxError, VariableDoesNotExist, *FILTER_ERRORS) as exc:
        line = _line_of(exc)
        where = f"{part}, line {line}" if line else part
        message = str(exc)
        if isinstance(exc, VariableDoesNotExist) and exc.params:
            message = exc.msg % exc.params
        raise TemplateRenderError(
            f"template error in {where}: {message}", line=line, part=part
        ) from exc


def _check_nesting(part: str, source: str) -> None:
    """Refuse tags nested deeper than the limit, before Django's parser (which recurses
    once per level) sees them."""
    limit = conf.template_max_nesting()
    depth = deepest = 0
    line = None
    for token in Lexer(source).tokenize():
        if token.token_type is not TokenType.BLOCK or not token.contents:
            continue
        name = token.contents.split()[0]
        if name in BLOCK_TAGS:
            depth += 1
            if depth > deepest:
                deepest, line = depth, token.lineno
        elif name.startswith("end") and name[3:] in BLOCK_TAGS:
            depth = max(depth - 1, 0)
    if deepest > limit:
        raise TemplateRenderError(
            f"template error in {part}, line {line}: tags are nested {deepest} deep, "
            f"over the limit of {limit}",
            line=line,
            part=part,
        )


class CompiledTemplate:
    """A template's subject and bodies compiled once, rendered for many records, each
    render within its budget (``activities.sandbox.RenderBudget``)."""

    PARTS = (("subject", False), ("HTML body", True), ("text body", False))

    def __init__(self, *, subject: str, body_html: str, body_text: str):
        self._compiled = []
        for (part, autoescape), source in zip(
            self.PARTS, (subject, body_html, body_text), strict=True
        ):
            _check_nesting(part, source)
            with _template_errors(part):
                self._compiled.append((part, autoescape, _engine(autoescape).from_string(source)))

    def render(self, context: dict[str, Any]) -> tuple[str, str, str]:
        budget = RenderBudget(
            max_iterations=conf.template_max_iterations(),
            max_output=conf.template_max_output(),
            seconds=conf.template_max_seconds(),
        )
        out = []
        for part, autoescape, template in self._compiled:
            with _template_errors(part):
                render_context = Context(context, autoescape=autoescape)
                setattr(render_context, BUDGET_ATTRIBUTE, budget)
                rendered = template.render(render_context)
                budget.spend_output(len(rendered))
                out.append(rendered)
        subject, html, text = out
        # A subject is one header line.
        return " ".join(subject.split()), html, text


RECORD_TYPE_MODELS: dict[str, type[models.Model]] = {
    RecordType.CONTACT: Contact,
    RecordType.ACCOUNT: Account,
    RecordType.USER: User,
}


def template_check(*, subject: str, body_html: str, body_text: str) -> None:
    """Compile and render a template's parts with empty merge fields; raise on errors."""
    template_render_parts(
        subject=subject,
        body_html=body_html,
        body_text=body_text,
        context=merge_context(regarding=None, sender=None),
    )


def template_render_parts(
    *, subject: str, body_html: str, body_text: str, context: dict[str, Any]
) -> tuple[str, str, str]:
    return CompiledTemplate(subject=subject, body_html=body_html, body_text=body_text).render(
        context
    )


def _check_record_type(*, record_type: str, title: str, regarding: models.Model | None) -> None:
    expected = RECORD_TYPE_MODELS.get(record_type)
    if expected is not None and not isinstance(regarding, expected):
        got = type(regarding).__name__.lower() if regarding is not None else "nothing"
        raise TemplateRenderError(
            f"the template {title!r} is for a {record_type} record, not {got}"
        )


def template_render(
    *, template: Template, regarding: models.Model | None, sender: User | Queue | None = None
) -> RenderedTemplate:
    """Render ("instantiate") a template for one record without sending anything."""
    _check_record_type(record_type=template.record_type, title=template.title, regarding=regarding)
    subject, html, text = template_render_parts(
        subject=template.subject,
        body_html=template.body_html,
        body_text=template.body_text,
        context=merge_context(regarding=regarding, sender=sender),
    )
    return RenderedTemplate(
        subject=subject,
        body_html=html,
        body_text=text,
        attachments=list(template.attachments.all()),
    )


def template_preview(
    *,
    title: str,
    record_type: str,
    subject: str,
    body_html: str,
    body_text: str,
    regarding: models.Model | None,
    sender: User | Queue | None,
) -> RenderedTemplate:
    """Render a template's text as typed, not yet saved, for one record and sender.

    Writes nothing. Raises ``TemplateRenderError`` (with ``part`` and ``line``) for an
    error in the text, or when ``regarding`` is not of the template's record type.
    """
    _check_record_type(record_type=record_type, title=title, regarding=regarding)
    rendered_subject, html, text = template_render_parts(
        subject=subject,
        body_html=body_html,
        body_text=body_text,
        context=merge_context(regarding=regarding, sender=sender),
    )
    return RenderedTemplate(subject=rendered_subject, body_html=html, body_text=text)


def template_save(*, template: Template, actor: User | None = None) -> Template:
    """Create or update a template after checking that every part compiles and renders.

    Staff only (``actor`` None is the system). Raises ``PermissionDeniedError`` (403),
    ``TemplateRenderError`` (400, naming the part and line) or ``ValidationFailed``.
    """
    require_staff(actor, "changing templates")
    template_check(
        subject=template.subject, body_html=template.body_html, body_text=template.body_text
    )
    try:
        template.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(
            "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
        ) from exc
    if template.pk is None and actor is not None and template.created_by_id is None:
        template.created_by = actor
    template.save()
    return template


def template_delete(*, template: Template, actor: User | None = None) -> None:
    """Delete a template and its attachment links.

    Emails made from it keep their content and lose only the link (``SET_NULL``); the
    blobs stay (``PROTECT``), shared with those emails' own attachments, and the
    garbage collector removes any that nothing references any more. Staff only
    (``actor`` None is the system).
    """
    require_staff(actor, "deleting templates")
    template.delete()
