"""The vendors' APIs our users come from, each a thin adapter over ``activities``' services.

One subpackage per vendor (``dynamics``, ``graph``, ``superoffice``, ``genesys``), each
with its own URLs, OpenAPI tag, error shape and docs page (docs/compat/); no rule of the
email activity is written here again. The vendors are independent of each other and
share only ``compat.base``.
"""
