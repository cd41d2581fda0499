"""Genesys (``/api/v2/``): the email operations of Genesys' Web Services API.

``POST /api/v2/me/emails`` (operation ``Create``) and ``POST /api/v2/me/emails/{id}``
(``Send``, ``Reply``, ``ReplyAll``, ``Cancel``), ``GET /api/v2/me/emails/{id}``: each a
thin call of the services behind ``/api/v1/`` (docs/compat/genesys.md).
"""
