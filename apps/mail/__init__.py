"""Mail over I2P: SMTP and POP3 for mail programs, direct node-to-node mail, and a mail host (docs/mail.md)."""
from .service import MailService

__all__ = ["MailService"]
