"""The admin of the email activity, a module per model area; importing them registers them."""

from . import bulk, emails, inbound, mailboxes, suppression, templates

__all__ = ["bulk", "emails", "inbound", "mailboxes", "suppression", "templates"]
