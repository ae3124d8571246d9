"""Mail over I2P: SMTP and POP3 for mail programs, direct node-to-node mail, and a mail host (docs/mail.md)."""

__all__ = ["MailService"]


def __getattr__(name: str):
    # the service (and aiosmtpd) loads on first use: `pyi2p mail` and `pyi2p run` without mail do not need it
    if name == "MailService":
        from .service import MailService
        return MailService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
