"""Signal receivers of the email activity: each only calls a service.

Imported by ``ActivitiesConfig.ready`` (Django's ``autodiscover_modules``, as the admin
finds ``admin.py``). anymail's ``inbound`` signal is received in
``activities.inbound_webhooks``, the module that routes the only views sending it.
"""

from __future__ import annotations

from typing import Any

from crm.models import Queue, User
from crm.signals import email_address_approved

from .services.inbound_release import inbound_release_after_approval


def release_approved_mailbox(sender: Any, mailbox: User | Queue, **kwargs: Any) -> None:
    """An address approved: what its mailbox blocked is released after the commit."""
    inbound_release_after_approval(mailbox=mailbox)


email_address_approved.connect(
    release_approved_mailbox, dispatch_uid="activities.receivers.release_approved_mailbox"
)
