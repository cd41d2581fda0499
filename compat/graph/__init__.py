"""Microsoft Graph (``/graph/v1.0/``): sendMail, messages and their attachments."""
