"""The service layer: every write and transition of the email activity."""
