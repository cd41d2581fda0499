"""What a failed hand-over means: permanent (give up now) or transient (try again)."""

from __future__ import annotations

import smtplib
import socket

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)


class PermanentFailure(Exception):
    pass


class TransientFailure(Exception):
    pass


def _smtp_code_is_permanent(code: int | None) -> bool:
    return code is not None and 500 <= int(code) < 600


def classify_send_error(exc: BaseException) -> type[PermanentFailure] | type[TransientFailure]:
    """Permanent: the server or provider refused this message for good (5xx, bad address).

    Transient: anything that may work later (4xx, lost connection, time-out).
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return (
            PermanentFailure
            if codes and all(map(_smtp_code_is_permanent, codes))
            else TransientFailure
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return PermanentFailure if _smtp_code_is_permanent(exc.smtp_code) else TransientFailure
    if isinstance(exc, AnymailRecipientsRefused | AnymailInvalidAddress):
        return PermanentFailure
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            return PermanentFailure
        return TransientFailure
    return TransientFailure


SEND_ERRORS = (smtplib.SMTPException, AnymailError, OSError, socket.timeout)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [
            f"{addr}: {code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
            for addr, (code, msg) in exc.recipients.items()
        ]
        return "recipients refused: " + "; ".join(parts)
    if isinstance(exc, smtplib.SMTPResponseException):
        msg = exc.smtp_error
        text = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
        return f"{type(exc).__name__}: {exc.smtp_code} {text}"
    return f"{type(exc).__name__}: {exc}"
