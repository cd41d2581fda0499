"""Microsoft Dynamics 365 Web API (``/api/data/v9.2/``): the email activity entity sets and actions."""
