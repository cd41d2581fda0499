"""Staff web pages of the CRM core (approvals of sender addresses)."""
