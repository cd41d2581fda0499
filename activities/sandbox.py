"""The tags and filters that email templates may use: a curated, harmless subset.

Registered as the only builtins of the template engine in ``services.templates``;
``{% load %}``, ``{% include %}``, ``{% extends %}``, ``{% debug %}``, ``{% url %}``,
``{% csrf_token %}`` and ``{% lorem %}`` are absent, so using one is a syntax error.
Merge fields hold data from outside (a contact's name); nothing may turn their HTML
escaping off, hence no ``safe``/``safeseq`` filters and no ``{% autoescape %}`` tag.
"""

from functools import wraps

from django.template import Library, defaultfilters, defaulttags

register = Library()

# Padding filters allocate what the template asks for; keep that within reason.
MAX_PAD_WIDTH = 1000
PADDING_FILTERS = {"ljust", "rjust", "center"}

ALLOWED_TAGS = (
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)
UNSAFE_FILTERS = {"safe", "safeseq", "pprint"}

for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]


def _capped_width(func):
    @wraps(func)
    def padded(value, arg):
        try:
            width = int(arg)
        except (TypeError, ValueError):
            width = 0
        if width > MAX_PAD_WIDTH:
            raise ValueError(f"{func.__name__} width {width} is over the limit of {MAX_PAD_WIDTH}")
        return func(value, arg)

    return padded


for _name, _func in defaultfilters.register.filters.items():
    if _name in UNSAFE_FILTERS:
        continue
    if _name in PADDING_FILTERS:
        register.filter(_name, _capped_width(_func), is_safe=_func.is_safe)
    else:
        register.filters[_name] = _func
