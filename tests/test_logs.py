"""Logs never show a phone or ID number in clear."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.core.privacy import mask
from bot.logs import HANDLER_NAME, MaskingFilter, setup_logging

PHONE = "13812345678"
ID_NUMBER = "440301199003071234"


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """Return a logger whose only handler writes through the filter into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger(f"lianhu.test.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, out
    logger.removeHandler(handler)


def test_numbers_in_the_message_are_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.info(f"report from {PHONE}, ID {ID_NUMBER}")
    text = out.getvalue()
    assert PHONE not in text and ID_NUMBER not in text
    assert "138****5678" in text and "440301" in text


def test_numbers_in_args_are_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.warning("report from %s (ID %s), %d photos", PHONE, ID_NUMBER, 2)
    logger.warning("mapping args: %(phone)s", {"phone": int(PHONE)})
    text = out.getvalue()
    assert PHONE not in text and ID_NUMBER not in text
    assert "2 photos" in text and "mapping args: 138****5678" in text


def test_tracebacks_are_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    try:
        raise ValueError(f"bad ID {ID_NUMBER}")
    except ValueError:
        logger.exception("failed for %s", PHONE)
    text = out.getvalue()
    assert "Traceback" in text and "ValueError: bad ID 440301" in text
    assert PHONE not in text and ID_NUMBER not in text


def test_a_bad_format_neither_raises_nor_leaks(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.error("count %d", PHONE)
    text = out.getvalue()
    assert "count %d" in text and PHONE not in text


def test_text_without_numbers_is_untouched(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.info("ticket %s escalated to %s", "42", "海湾街道")
    assert out.getvalue() == "INFO ticket 42 escalated to 海湾街道\n"


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """Return the root logger, restored after the test."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_setup_logging_is_idempotent(root: logging.Logger) -> None:
    setup_logging("info")
    setup_logging("DEBUG")
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    assert len(ours) == 1
    assert root.level == logging.DEBUG
    (handler,) = ours
    assert isinstance(handler, logging.StreamHandler)
    assert any(isinstance(f, MaskingFilter) for f in handler.filters)


def test_setup_logging_masks_what_reaches_the_root(root: logging.Logger) -> None:
    setup_logging()
    (handler,) = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    assert isinstance(handler, logging.StreamHandler)
    out = io.StringIO()
    handler.setStream(out)
    logging.getLogger("lianhu.test.propagated").warning("call %s", PHONE)
    text = out.getvalue()
    assert "call 138****5678" in text and PHONE not in text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("电话13812345678", "电话138****5678"),
        ("tel: +86 138 1234 5678.", "tel: 138****5678."),
        ("香港 9123 4567 找我", "香港 9***4567 找我"),
        ("座机020-87654321", "座机020-********"),
        ("身份证44030119900101123X", "身份证440301************"),
        # Ids and hashes are not numbers: rq's worker names, uuids, commit ids stay whole.
        ("Worker 90f3c7e13812345678abdb9468b7e6f7 started", None),
        ("job deadline-12-1-ack-1794906770", None),
        ("uuid 5d1c2a7b-0e3f-4a5b-8abc-13812345678f", None),
    ],
)
def test_what_is_masked_and_what_is_not(raw: str, expected: str | None) -> None:
    assert mask(raw) == (raw if expected is None else expected)


REAL_SHAPED = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"


def test_a_bot_api_url_never_shows_its_token(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.info('HTTP Request: POST %s "HTTP/1.1 200 OK"',
                f"https://api.telegram.org/bot{REAL_SHAPED}/getUpdates")  # fmt: skip
    logger.info("token alone: %s", REAL_SHAPED)
    text = out.getvalue()
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0" not in text
    assert "https://api.telegram.org/bot<redacted>/getUpdates" in text
    assert "token alone: 7012345678:<redacted>" in text


def test_registered_secrets_are_redacted_everywhere() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(MaskingFilter(["123456:TEST-fake-token", "redis-pass-42"]))
    logger = logging.getLogger("lianhu.test.secrets")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("connecting with %s", "redis://:redis-pass-42@127.0.0.1/0")
        logger.warning("the part after the colon: TEST-fake-token")
        try:
            raise RuntimeError("bad token 123456:TEST-fake-token")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "redis-pass-42" not in text and "TEST-fake-token" not in text
    assert "redis://:<redacted>@127.0.0.1/0" in text and "RuntimeError: bad token" in text


def test_setup_logging_keeps_http_clients_quiet_and_adds_secrets(root: logging.Logger) -> None:
    setup_logging("DEBUG")
    setup_logging("DEBUG", ["a-later-secret"])
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("httpcore.http11").getEffectiveLevel() == logging.WARNING
    (handler,) = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    assert isinstance(handler, logging.StreamHandler)
    out = io.StringIO()
    handler.setStream(out)
    logging.getLogger("lianhu.test.later").warning("value a-later-secret")
    assert out.getvalue().endswith("value <redacted>\n")


def test_settings_name_their_secrets() -> None:
    from bot.settings import Settings

    settings = Settings(
        **{"REDIS_URL": "redis://lianhu:s3cret-pw@127.0.0.1:6379/0"},
        telegram_token="1:abcdefgh", webhook_secret="hook-secret",
        wecom_token="wecom-token", wecom_aes_key="k" * 43,
    )  # fmt: skip
    assert set(settings.secret_values()) == {
        "1:abcdefgh", "hook-secret", "s3cret-pw", "wecom-token", "k" * 43,
    }  # fmt: skip
