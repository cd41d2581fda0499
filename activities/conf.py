"""Application tunables, read at call time so that override_settings works in tests."""

from django.conf import settings


def lease_seconds() -> int:
    return settings.CRM_LEASE_SECONDS


def send_max_attempts() -> int:
    return settings.CRM_SEND_MAX_ATTEMPTS


def retry_backoff(attempt: int) -> int:
    """Seconds to wait before attempt ``attempt + 1``: exponential, capped."""
    base = settings.CRM_RETRY_BACKOFF_SECONDS
    return int(min(base * 2 ** max(attempt - 1, 0), settings.CRM_RETRY_BACKOFF_MAX_SECONDS))


def sweep_pending_after_seconds() -> int:
    return settings.CRM_SWEEP_PENDING_AFTER_SECONDS


def inbound_max_bytes() -> int:
    return settings.CRM_INBOUND_MAX_BYTES


def inbound_max_parts() -> int:
    return settings.CRM_INBOUND_MAX_PARTS


def inbound_inline_read_parts() -> int:
    """A received message with more MIME parts than this is read by a worker, not in the
    SMTP session or webhook request that brought it (which answer once it is kept)."""
    return settings.CRM_INBOUND_INLINE_READ_PARTS


def blob_gc_grace_seconds() -> int:
    return settings.CRM_BLOB_GC_GRACE_SECONDS


def message_id_domain() -> str:
    return settings.CRM_MESSAGE_ID_DOMAIN


def bulk_chunk_size() -> int:
    return settings.CRM_BULK_CHUNK_SIZE


def eta_horizon_seconds() -> float:
    """Tasks are published with an ETA or countdown at most this far ahead."""
    return settings.CRM_ETA_HORIZON_SECONDS


def task_slice_seconds() -> float:
    """How long a bulk run or a delivery chunk works before handing the rest on."""
    return settings.CRM_TASK_SLICE_SECONDS


def template_max_nesting() -> int:
    """How deep a template's block tags ({% if %}, {% for %}...) may nest."""
    return settings.CRM_TEMPLATE_MAX_NESTING


def template_max_iterations() -> int:
    """Loop items one render of a template may run over, all loops together."""
    return settings.CRM_TEMPLATE_MAX_ITERATIONS


def template_max_output() -> int:
    """Characters one render of a template (subject and bodies) may produce."""
    return settings.CRM_TEMPLATE_MAX_OUTPUT


def template_max_seconds() -> float:
    """Seconds one render of a template may take."""
    return settings.CRM_TEMPLATE_MAX_SECONDS


def mailbox_timeout() -> float:
    """Seconds a polled mailbox's server may take to answer (connect, each command)."""
    return settings.CRM_MAILBOX_TIMEOUT


def mailbox_max_messages() -> int:
    """Messages one poll of a mailbox takes at most; the rest waits for the next poll."""
    return settings.CRM_MAILBOX_MAX_MESSAGES


def mailbox_max_message_bytes() -> int:
    """A message the server reports bigger than this is refused without downloading it."""
    return settings.CRM_MAILBOX_MAX_MESSAGE_BYTES


def mailbox_max_poll_bytes() -> int:
    """Bytes one poll of a mailbox downloads at most; the rest waits for the next poll."""
    return settings.CRM_MAILBOX_MAX_POLL_BYTES


def mailbox_allow_plain() -> bool:
    """Whether a mailbox may be reached without TLS on a host other than loopback."""
    return settings.CRM_MAILBOX_ALLOW_PLAIN


def mailbox_ca_file() -> str:
    """A CA bundle to verify mailbox servers with; empty: the system's."""
    return settings.CRM_MAILBOX_CA_FILE


def mailbox_lease_seconds() -> int:
    """How long a poll holds its mailbox against another poll of it."""
    return settings.CRM_MAILBOX_LEASE_SECONDS


def webhooks_allow_private_networks() -> bool:
    """Whether webhook targets on loopback, private or link-local networks are allowed."""
    return settings.CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS


def webhook_retry_schedule() -> list[int]:
    """Seconds to wait before each try of a webhook event after the first."""
    return list(settings.CRM_WEBHOOK_RETRY_SCHEDULE)


def webhook_timeout_seconds() -> float:
    return settings.CRM_WEBHOOK_TIMEOUT_SECONDS


def webhook_disable_after_failed_events() -> int:
    return settings.CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS
