"""Domain errors of the email activity, each with the stable code integrators see."""

from common.errors import ApplicationError, Conflict, InvalidTransition, ValidationFailed

__all__ = [
    "ApplicationError",
    "AttachmentCorrupted",
    "AttachmentTooLarge",
    "Conflict",
    "InvalidAddress",
    "InvalidHeader",
    "InvalidTransition",
    "InvalidUnsubscribeLink",
    "LeaseConflict",
    "MailboxInvalid",
    "MailboxLoginFailed",
    "MailboxRefused",
    "MailboxUnreachable",
    "MessageHeld",
    "NoRecipients",
    "NotOutgoing",
    "RecipientSuppressed",
    "SenderNotAllowed",
    "SenderNotApproved",
    "TemplateRenderError",
    "ValidationFailed",
    "WebhookTargetRefused",
]


class NotOutgoing(ApplicationError):
    code = "not_outgoing"
    http_status = 409


class NoRecipients(ApplicationError):
    code = "no_recipients"
    field = "to"


class InvalidAddress(ApplicationError):
    code = "invalid_address"


class InvalidHeader(ApplicationError):
    """A header value (subject, display name) holds CR, LF or NUL or is too long."""

    code = "invalid_header"


class MessageHeld(ApplicationError):
    """A received message was kept but not recorded as an email (blocked for an address
    that is not approved, or unreadable): staff see it with the reason."""

    code = "message_held"
    http_status = 202


class SenderNotAllowed(ApplicationError):
    code = "sender_not_allowed"
    field = "sender"
    http_status = 403


class SenderNotApproved(ApplicationError):
    code = "sender_not_approved"
    field = "sender"


class AttachmentTooLarge(ApplicationError):
    code = "attachment_too_large"
    field = "attachments"
    http_status = 413


class EmptyAttachment(ApplicationError):
    code = "attachment_empty"
    field = "attachments"


class AttachmentCorrupted(ApplicationError):
    """The stored bytes of an attachment no longer match its size or SHA-256.

    Not the caller's fault and nothing a retry mends: 502, as the storage behind the
    application answered wrong bytes.
    """

    code = "attachment_corrupted"
    field = "attachments"
    http_status = 502


# The template field each part of a template is written in.
TEMPLATE_PART_FIELDS = {"subject": "subject", "HTML body": "body_html", "text body": "body_text"}


class TemplateRenderError(ApplicationError):
    code = "template_error"

    def __init__(self, message: str, *, line: int | None = None, part: str | None = None):
        super().__init__(
            message,
            extra={"line": line} if line else None,
            field=TEMPLATE_PART_FIELDS.get(part or ""),
        )
        self.line = line
        # "subject", "HTML body" or "text body": the part named in the message.
        self.part = part


class LeaseConflict(Conflict):
    """A report or status write carried a missing, stale or foreign lease token."""

    code = "stale_lease"


class InvalidUnsubscribeLink(ApplicationError):
    code = "invalid_unsubscribe_link"


class RecipientSuppressed(ApplicationError):
    """A recipient's address hard-bounced or complained: mail to it is not sent again
    until staff take it off the suppression list."""

    code = "recipient_suppressed"


class MailboxInvalid(ApplicationError):
    """A polled mailbox's settings are refused (plain text beyond loopback, ...)."""

    code = "mailbox_invalid"


class MailboxUnreachable(ApplicationError):
    """The mailbox's server could not be reached, or broke the connection (TLS, timeout)."""

    code = "mailbox_unreachable"
    http_status = 502


class MailboxLoginFailed(ApplicationError):
    """The mailbox's server refused the username and password, or the folder."""

    code = "mailbox_login_failed"
    http_status = 502


class MailboxRefused(ApplicationError):
    """The mailbox's server refused a step of the poll (a folder to move to, a flag)."""

    code = "mailbox_command_refused"
    http_status = 502


class WebhookTargetRefused(ApplicationError):
    """A webhook URL this server will not call: not http(s), unresolvable, or on a
    loopback, private, link-local or other non-public network (an SSRF guard)."""

    code = "webhook_target_refused"
    field = "url"
