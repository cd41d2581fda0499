"""Delivery by our workers: error classification, the chunk loop, the sweep.

The lease records (claim, sent, failed, release) are ``services.leases``, shared with
the external-claim path; they are re-exported here for the callers of delivery.
"""

from ..leases import email_record_failure, email_record_sent, email_release
from .chunk import (
    CLAIM_BATCH,
    ChunkResult,
    DeliveryResult,
    deliver_chunk,
    email_claim_for_delivery,
    email_deliver,
)
from .failures import PermanentFailure, TransientFailure, classify_send_error, describe_error
from .sweep import SweepResult, delivery_sweep, delivery_sweep_and_enqueue

__all__ = [
    "CLAIM_BATCH",
    "ChunkResult",
    "DeliveryResult",
    "PermanentFailure",
    "SweepResult",
    "TransientFailure",
    "classify_send_error",
    "deliver_chunk",
    "delivery_sweep",
    "delivery_sweep_and_enqueue",
    "describe_error",
    "email_claim_for_delivery",
    "email_deliver",
    "email_record_failure",
    "email_record_sent",
    "email_release",
]
