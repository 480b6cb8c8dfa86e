"""`lianhu run --webhook URL` as an operator starts it: a real process behind a webhook."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis.asyncio

from bot.storage import keys
from tests.fake_bot_api import TOKEN, FakeBotApi, wait_for
from tests.telegram_fixtures import (
    H01,
    LIGHT,
    ORG,
    RESIDENT,
    ROOT,
    RULES_DIR,
    SECRET,
    V01,
    free_port,
)


async def test_the_webhook_process_registers_rejects_forgeries_and_answers(
    fake: FakeBotApi, redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ, "REDIS_URL": redis_url, "LIANHU_RULES_DIR": str(RULES_DIR),
        "LIANHU_ORG_FILE": str(ORG), "LIANHU_TELEGRAM_TOKEN": TOKEN,
        "LIANHU_TELEGRAM_BASE_URL": fake.url, "LIANHU_WEBHOOK_SECRET": SECRET,
    }  # fmt: skip
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--webhook", "https://bot.example.org/tg/hook",
             "--listen", "127.0.0.1", "--port", str(port)],
            env=env, cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        await wait_for(lambda: "setWebhook" in fake.methods(), 60, "setWebhook")
        assert fake.webhook["url"] == "https://bot.example.org/tg/hook"
        assert fake.webhook["secret_token"] == SECRET
        fake.webhook_target = f"http://127.0.0.1:{port}/tg/hook"
        report = fake.message(H01, RESIDENT, LIGHT)
        assert await fake.deliver(report, secret="forged") == 403
        assert await fake.deliver(report, secret=None) == 403
        assert await redis_async.xlen(keys.inbox("telegram")) == 0  # nothing stored
        assert await fake.deliver(report) == 200
        assert await fake.deliver(report) == 200  # Telegram retried: stored once
        await wait_for(lambda: len(fake.sent_to(V01)) == 1 and fake.sent_to(H01), 60, "answers")
        reply = fake.sent_to(H01)[0]
        assert reply.reply_to == report["message"]["message_id"]
        assert fake.sent_to(V01)[0].buttons
        assert SECRET not in log.read_text(encoding="utf-8", errors="replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert code == 0, log.read_text(encoding="utf-8", errors="replace")
    assert len(fake.sent_to(H01)) == 1 and len(fake.sent_to(V01)) == 1  # once each


async def test_a_polling_run_never_logs_the_token_even_at_debug(
    fake: FakeBotApi, redis_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ, "REDIS_URL": redis_url, "LIANHU_RULES_DIR": str(RULES_DIR),
        "LIANHU_ORG_FILE": str(ORG), "LIANHU_TELEGRAM_TOKEN": TOKEN,
        "LIANHU_TELEGRAM_BASE_URL": fake.url,
    }  # fmt: skip
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--log-level", "DEBUG"],
            env=env, cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        await wait_for(lambda: "getUpdates" in fake.methods(), 60, "getUpdates")
        fake.push(fake.message(H01, RESIDENT, LIGHT))
        await wait_for(lambda: len(fake.sent_to(V01)) == 1 and fake.sent_to(H01), 60, "answers")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    text = log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, text
    assert "DEBUG" in text  # the run did log at DEBUG
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
