"""The tags and filters that email templates may use: a curated, harmless subset.

Registered as the only builtins of the template engine in ``services.templates``;
``{% load %}``, ``{% include %}``, ``{% extends %}``, ``{% debug %}``, ``{% url %}``,
``{% csrf_token %}`` and ``{% lorem %}`` are absent, so using one is a syntax error.
Merge fields hold data from outside (a contact's name); nothing may turn their HTML
escaping off, hence no ``safe``/``safeseq`` filters and no ``{% autoescape %}`` tag.
"""

import re
import time
from dataclasses import dataclass, field
from functools import wraps

from django.template import Library, defaultfilters, defaulttags
from django.template.defaulttags import ForNode

register = Library()

# Padding filters allocate what the template asks for; keep that within reason.
MAX_PAD_WIDTH = 1000
PADDING_FILTERS = {"ljust", "rjust", "center"}
# floatformat's digits and stringformat's width and precision, likewise.
MAX_FLOAT_DIGITS = 50
_FORMAT_SPEC = re.compile(r"^[#0\- +]*(\d*)(?:\.(\d*))?[a-zA-Z]$")


class TemplateBudgetExceeded(ValueError):
    """A render went over its budget (loop iterations, output size or time)."""


@dataclass
class RenderBudget:
    """What one render of a template (its subject and bodies) may spend. Loops are
    counted as they start, by the items they will run over, so nested loops are stopped
    before they multiply; output is counted as loops finish and once at the end."""

    max_iterations: int
    max_output: int
    seconds: float
    iterations: int = 0
    output: int = 0
    deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def spend_iterations(self, count: int) -> None:
        self.iterations += count
        if self.iterations > self.max_iterations:
            raise TemplateBudgetExceeded(
                f"loops ran over {self.max_iterations:,} items in all, the limit of one render"
            )
        self._check_time()

    def spend_output(self, size: int) -> None:
        self.output += size
        if self.output > self.max_output:
            raise TemplateBudgetExceeded(
                f"the output is over {self.max_output:,} characters, the limit of one render"
            )
        self._check_time()

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateBudgetExceeded(
                f"rendering took over {self.seconds:g} s, the limit of one render"
            )


#: The attribute of the render's Context that holds its RenderBudget.
BUDGET_ATTRIBUTE = "crm_render_budget"


class BudgetedForNode(ForNode):
    """``{% for %}`` that spends the render's budget before it loops."""

    def render(self, context):
        budget = getattr(context, BUDGET_ATTRIBUTE, None)
        if budget is not None:
            sequence = self.sequence
            assert not isinstance(sequence, str)  # do_for always gives a FilterExpression
            values = sequence.resolve(context, ignore_failures=True)
            try:
                count = len(values) if values is not None else 0
            except TypeError:  # an iterator: as ForNode does, it becomes a list
                count = len(list(values))
            budget.spend_iterations(count)
        out = super().render(context)
        if budget is not None:
            budget.spend_output(len(out))
        return out


def do_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.__class__ = BudgetedForNode
    return node


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
register.tags["for"] = do_for

#: The tags that open a block closed by an ``end...`` tag: their nesting is limited
#: before the parser (which recurses once per level) sees the template.
BLOCK_TAGS = {"comment", "filter", "for", "if", "ifchanged", "spaceless", "verbatim", "with"}


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


def _capped_stringformat(value, arg):
    match = _FORMAT_SPEC.match(str(arg))
    if match:
        for number in match.groups():
            if number and int(number) > MAX_PAD_WIDTH:
                raise ValueError(
                    f"stringformat width or precision {int(number)} is over the limit of "
                    f"{MAX_PAD_WIDTH}"
                )
    return defaultfilters.stringformat(value, arg)


def _capped_floatformat(text, arg=-1):
    digits = re.sub(r"[gGuU]", "", str(arg))
    try:
        number = abs(int(digits or 0))
    except ValueError:
        number = 0
    if number > MAX_FLOAT_DIGITS:
        raise ValueError(f"floatformat digits {number} is over the limit of {MAX_FLOAT_DIGITS}")
    return defaultfilters.floatformat(text, arg)


for _name, _func in defaultfilters.register.filters.items():
    if _name in UNSAFE_FILTERS:
        continue
    if _name in PADDING_FILTERS:
        register.filter(_name, _capped_width(_func), is_safe=_func.is_safe)
    else:
        register.filters[_name] = _func
register.filter("stringformat", _capped_stringformat, is_safe=True)
register.filter("floatformat", _capped_floatformat, is_safe=True)
