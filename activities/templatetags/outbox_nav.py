"""``{% outbox_enabled as name %}``: whether mail goes to the outbox folder, so the
layout links the outbox viewer only when there is something for it to show."""

from __future__ import annotations

from django import template

from ..outbox import outbox_enabled as _outbox_enabled

register = template.Library()


@register.simple_tag
def outbox_enabled() -> bool:
    return _outbox_enabled()
