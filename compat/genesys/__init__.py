"""Genesys Cloud (``/api/v2/``): conversation emails sent by operation "Send"."""
