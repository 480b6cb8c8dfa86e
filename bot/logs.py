"""Logging that never writes a resident's phone or ID number in clear."""

from __future__ import annotations

import logging
import sys

from bot.core.privacy import mask

HANDLER_NAME = "lianhu"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MaskingFilter(logging.Filter):
    """Mask phone, ID card and bank card numbers in every record that passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message with its arguments, mask it, and keep the record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not stop the program nor leak its args
            message = f"{record.msg!s} {record.args!r}"
        record.msg = mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set: format the traceback here so it is masked too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr through a masking filter; calling again only changes the level."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(h.get_name() == HANDLER_NAME for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
