"""The SMTP front: aiosmtpd protocol (server.py) and the relay's hooks (handler.py)."""
