"""Bulk email (Dynamics' SendBulkMail): one template to every contact a query selects.

A job is checked when it starts (the sender rules of a single send), then a task walks
the contacts in id order, one chunk at a time. Each chunk is one transaction that
writes its emails, parties, attachment links and events with one statement per table,
advances the job's cursor (``last_contact_id``) and counters, and re-checks that the
job is still running; delivery is queued after it commits. A run that dies resumes
after the cursor, and the unique (job, contact) constraint makes a second email for a
contact impossible. Cancel stops creation (the next chunk sees it) and withdraws the
emails no sender has claimed yet.

The parts: ``query`` (checking a job's query), ``start``, ``run`` and ``cancel``.
"""

from .cancel import bulk_send_cancel
from .query import bulk_query_clean
from .run import bulk_send_run, bulk_sends_to_resume
from .start import bulk_send_start, bulk_send_start_once

__all__ = [
    "bulk_query_clean",
    "bulk_send_cancel",
    "bulk_send_run",
    "bulk_send_start",
    "bulk_send_start_once",
    "bulk_sends_to_resume",
]
