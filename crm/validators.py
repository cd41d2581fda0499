"""Field validators of the CRM records (below the models and their migrations)."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def validate_single_line(value: str) -> None:
    """Names end up in mail headers (From, To display names): refused when written if
    they hold a line break or NUL, not only later when a send needs them."""
    if any(ch in value for ch in ("\r", "\n", "\x00")):
        raise ValidationError(
            "must not contain line breaks (CR, LF) or NUL characters", code="line_break"
        )
