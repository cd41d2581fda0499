"""The admin of the email activity, a module per model area; importing them registers them."""

from . import bulk, emails, inbound, mailboxes, suppression, templates, webhooks

__all__ = ["bulk", "emails", "inbound", "mailboxes", "suppression", "templates", "webhooks"]
