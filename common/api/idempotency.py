"""``Idempotency-Key`` for the POSTs that create or send.

The same key and the same request return the first answer and do the work once, also
when the repeats arrive together: the first request inserts the key (a unique
constraint decides), does the work and stores its answer; a concurrent repeat waits
for that answer. The same key with a different request is a 422. Server errors are
not stored, so a repeat after one tries again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from common.models import IdempotencyRecord

HEADER = "Idempotency-Key"
# 1 to 255 visible ASCII characters, spaces inside only: an HTTP header value that no
# proxy rewrites (they drop surrounding spaces), the IETF draft's string. The schema
# says the same (``common.api.schema.IDEMPOTENCY_KEY``).
KEY_MAX_LENGTH = 255
KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
_KEY = re.compile(KEY_PATTERN)
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05


def _fingerprint(request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    data = request.data
    if hasattr(data, "lists"):  # a QueryDict (form or multipart)
        fields = {k: v for k, v in data.lists() if k not in request.FILES}
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
        for name in sorted(request.FILES):
            for upload in request.FILES.getlist(name):
                digest.update(f"{name}:{upload.name}:{upload.size}:".encode())
                for chunk in upload.chunks():
                    digest.update(chunk)
                upload.seek(0)
    else:
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    body = json.loads(record.response_body) if record.response_body is not None else None
    response = Response(body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def _error(detail: str, code: str, http_status: int) -> Response:
    return Response({"detail": detail, "code": code}, status=http_status)


def idempotent(view_method):
    """Decorate a POST handler of an APIView or a viewset action."""

    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return view_method(self, request, *args, **kwargs)
        if len(key) > KEY_MAX_LENGTH or not _KEY.match(key):
            return _error(
                f"{HEADER} must be 1 to {KEY_MAX_LENGTH} visible ASCII characters "
                "(spaces inside only)",
                "invalid_idempotency_key",
                400,
            )
        fingerprint = _fingerprint(request)
        cutoff = timezone.now() - timedelta(seconds=settings.CRM_IDEMPOTENCY_TTL_SECONDS)
        IdempotencyRecord.objects.filter(user=request.user, key=key, created_at__lt=cutoff).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=request.user,
                    key=key,
                    method=request.method,
                    path=request.path[:500],
                    request_hash=fingerprint,
                )
        except IntegrityError:
            return _repeat(request.user, key, fingerprint)
        try:
            response = view_method(self, request, *args, **kwargs)
        except Exception as exc:
            try:
                response = self.handle_exception(exc)
            except Exception:
                record.delete()
                raise
        if response.status_code >= 500:
            record.delete()
            return response
        body = JSONRenderer().render(response.data).decode() if response.data is not None else None
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status_code=response.status_code, response_body=body, completed_at=timezone.now()
        )
        return response

    return wrapper


def _repeat(user, key: str, fingerprint: str) -> Response:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        record = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if record is None:  # the first attempt failed with a server error: not stored
            return _error(
                f"the first request with this {HEADER} failed; send it again",
                "idempotency_retry",
                status.HTTP_409_CONFLICT,
            )
        if record.request_hash != fingerprint:
            return _error(
                f"this {HEADER} was already used for a different request",
                "idempotency_key_reused",
                status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if record.status_code is not None:
            return _replay(record)
        if time.monotonic() > deadline:
            return _error(
                f"the first request with this {HEADER} is still being processed",
                "idempotency_in_progress",
                status.HTTP_409_CONFLICT,
            )
        time.sleep(POLL_SECONDS)
