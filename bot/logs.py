"""Logging that never writes a resident's phone or ID number, nor a secret, in clear."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

from bot.core.privacy import mask

HANDLER_NAME = "lianhu"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "<redacted>"
# Libraries that log every request URL, and a Bot API URL holds the token (/bot<token>/getMe):
# they stay at WARNING whatever the level, and the filter redacts the token anyway.
QUIET_LOGGERS = ("httpx", "httpcore", "hpack")
# The token in a Bot API URL, whatever the token (another bot's, an old one).
_BOT_URL = re.compile(r"/bot[^/\s'\"<>]+")
# A Telegram token by its shape: the bot's id, a colon, 35 characters of secret.
_TOKEN_SHAPE = re.compile(r"(?<![0-9A-Za-z])(\d{5,}):[A-Za-z0-9_-]{30,}")
_SHORTEST_SECRET = 6  # a shorter "secret" would redact ordinary words


class MaskingFilter(logging.Filter):
    """Mask phone, ID card and bank card numbers, and redact secrets, in every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Redact these values (a token, a password) wherever they appear from now on."""
        for secret in secrets:
            if len(secret) >= _SHORTEST_SECRET:
                self.secrets.add(secret)
            # A bot token's part after the colon is the secret; the bot id is public.
            _, colon, tail = secret.partition(":")
            if colon and len(tail) >= _SHORTEST_SECRET:
                self.secrets.add(tail)

    def clean(self, text: str) -> str:
        """Return ``text`` with secrets redacted and personal numbers masked."""
        text = _BOT_URL.sub("/bot" + REDACTED, text)
        text = _TOKEN_SHAPE.sub(lambda m: f"{m.group(1)}:{REDACTED}", text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return mask(text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message with its arguments, clean it, and keep the record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not stop the program nor leak its args
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.clean(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set: format the traceback here so it is masked too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        return True


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Log to stderr through a masking filter that redacts ``secrets``.

    Calling again changes the level and adds the secrets; the handler stays one.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in root.handlers:
        if handler.get_name() == HANDLER_NAME:
            for existing in handler.filters:
                if isinstance(existing, MaskingFilter):
                    existing.add_secrets(secrets)
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(MaskingFilter(secrets))
    root.addHandler(handler)
