"""SuperOffice (``/api/v1/Agents/EMail/``): the EMail agent's SendEMails."""
