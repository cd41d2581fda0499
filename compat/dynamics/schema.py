"""The OpenAPI paths of the Dynamics routes, with Dataverse's key syntax.

A key in parentheses (``emails(<guid>)``) is read by the schema generator as a regex
group and shown as ``emails{var}``; this preprocessing hook (drf-spectacular's
``PREPROCESSING_HOOKS``) writes it back as ``emails({guid})``.
"""

from __future__ import annotations

from typing import Any

from .odata import SERVICE_ROOT


def odata_key_paths(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    fixed = []
    for path, path_regex, method, callback in endpoints:
        if path.startswith(f"/{SERVICE_ROOT.strip('/')}/"):
            path = path.replace("{var}", "({guid})")
        fixed.append((path, path_regex, method, callback))
    return fixed
