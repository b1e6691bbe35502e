"""Outgoing mail: `send_mail(to, subject, body)` through the backend MAIL_BACKEND names (log, memory or smtp).

`send_mail_later` sends from a thread of its own (a greenlet under gunicorn's gevent worker, which patches
threading), so the request that asked for the mail answers without waiting on the mail server.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage

from flask import Flask, current_app

log = logging.getLogger("fantasize.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


def outbox(app: Flask) -> list[Mail]:
    """The messages the memory backend has kept for this app, oldest first."""
    return app.extensions.setdefault("mail_outbox", [])


def _send_log(mail: Mail) -> None:
    # Development only: the body (a reset link, say) is what the developer needs to read in the log.
    log.info("mail to %s: %s\n%s", mail.to, mail.subject, mail.body)


def _send_memory(mail: Mail) -> None:
    outbox(current_app._get_current_object()).append(mail)


def _send_smtp(mail: Mail) -> None:
    cfg = current_app.config
    message = EmailMessage()
    message["From"] = cfg["MAIL_FROM"]
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    with smtplib.SMTP(cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=10) as smtp:
        smtp.ehlo()
        # Never send credentials in clear text when the server offers TLS.
        if smtp.has_extn("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if cfg.get("SMTP_USER"):
            smtp.login(cfg["SMTP_USER"], cfg.get("SMTP_PASSWORD") or "")
        smtp.send_message(message)


BACKENDS = {"log": _send_log, "memory": _send_memory, "smtp": _send_smtp}


def send_mail(to: str, subject: str, body: str) -> None:
    """Send one plain-text message; SMTP failures surface as OSError (smtplib.SMTPException is one)."""
    name = current_app.config["MAIL_BACKEND"]
    try:
        backend = BACKENDS[name]
    except KeyError:
        raise RuntimeError(f"MAIL_BACKEND must be one of {', '.join(BACKENDS)}, not {name!r}") from None
    backend(Mail(to, subject, body))


def _pending(app: Flask) -> set[threading.Thread]:
    return app.extensions.setdefault("mail_pending", set())


def send_mail_later(to: str, subject: str, body: str) -> None:
    """Send one message after the caller returns; failures are logged, never raised (nobody is left to tell)."""
    app = current_app._get_current_object()

    def send() -> None:
        try:
            with app.app_context():
                send_mail(to, subject, body)
        except Exception:
            log.exception("mail could not be sent", extra={"subject": subject})
        finally:
            _pending(app).discard(thread)

    thread = threading.Thread(target=send, name="mail", daemon=True)
    _pending(app).add(thread)
    thread.start()


def wait_for_mail(app: Flask, timeout: float = 15) -> None:
    """Block until every message `send_mail_later` has started for this app is sent or has failed (for tests)."""
    for thread in list(_pending(app)):
        thread.join(timeout)
