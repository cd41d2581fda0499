"""The tags and filters that email templates may use: a curated, harmless subset.

Registered as the only builtins of the template engine in ``services.templates``;
``{% load %}``, ``{% include %}``, ``{% extends %}``, ``{% debug %}``, ``{% url %}``,
``{% csrf_token %}`` and ``{% lorem %}`` are absent, so using one is a syntax error.
"""

from django.template import Library, defaultfilters, defaulttags

register = Library()

ALLOWED_TAGS = (
    "autoescape",
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
for _name, _func in defaultfilters.register.filters.items():
    if _name not in UNSAFE_FILTERS:
        register.filters[_name] = _func
