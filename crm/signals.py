"""Signals crm sends for the apps above it, which crm never imports.

``email_address_approved`` (``mailbox``: the user or queue) is sent by the approval
service inside its transaction, once the approval is written; a receiver that acts
after the commit uses ``transaction.on_commit`` (activities releases the mail the
address blocked).
"""

from django.dispatch import Signal

email_address_approved = Signal()
