"""relay: an anonymising SMTP relay for marketplace buyer-seller messaging."""

__version__ = "0.1.0"
