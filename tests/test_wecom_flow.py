"""The WeCom bot end to end against the fake WeCom on 127.0.0.1, a real Redis and the real use cases."""

from __future__ import annotations

import json
import time

import redis.asyncio

from bot.core.ticket import TicketState
from bot.storage import keys
from bot.wecom.crypto import WeComCipher
from bot.wecom.runner import WeComBot
from tests.fake_wecom import AES_KEY, OTHER_AES_KEY, TOKEN, FakeWeCom, wait_for
from tests.helpers import stored_ticket
from tests.wecom_fixtures import CADRE, H01, KEY_H01, KEY_V01, LIGHT, RESIDENT, V01


async def test_a_report_in_a_group_reaches_the_village_and_is_closed(
    fake_wecom: FakeWeCom, wecom_bot: WeComBot
) -> None:
    fake = fake_wecom
    # A resident @-mentions the robot in the household group: the passive reply opens ticket #1.
    report = fake.message(RESIDENT, f"@联户 {LIGHT}", chatid=H01)
    answer = await fake.post(report)
    assert answer.status == 200 and answer.reply is not None
    assert answer.reply["msgtype"] == "stream" and answer.reply["stream"]["finish"] is True
    assert "#1" in answer.reply["stream"]["content"]
    # WeCom delivers the same callback again (same msgid, new nonce): nothing more happens.
    assert (await fake.post(report)).status == 200
    # The card goes to the village group through its robot webhook, with the @-mention commands.
    card = await wait_for(lambda: [p for p in fake.pushes if p.key == KEY_V01], "card pushed")
    assert card[0].body["msgtype"] == "text" and LIGHT in card[0].text
    assert "@联户" in card[0].text and "「受理 1」" in card[0].text
    # The village cadre acts by @-mentioning the robot in the village group.
    ack = await fake.post(fake.message(CADRE, "@联户 受理 1", chatid=V01))
    assert ack.status == 200
    ticket = await wecom_bot.store.get("1")
    assert ticket is not None and ticket.state is TicketState.ACKNOWLEDGED
    # The resident hears of it through the report's response_url (its one use), as markdown.
    code = fake.code_of(report)
    told = await wait_for(lambda: fake.responses.get(code), "the resident told of the ack")
    assert told["msgtype"] == "markdown" and "#1" in told["markdown"]["content"]
    # ... and presses 办结 on a card in a single chat: asked for the result, types it.
    pressed = fake.button(CADRE, "resolve:1")
    assert (await fake.post(pressed)).status == 200
    assert _state(wecom_bot, "1") is TicketState.ACKNOWLEDGED  # nothing resolved yet
    assert (await fake.post(fake.message(CADRE, "路灯已更换"))).status == 200
    await wait_for(lambda: _state(wecom_bot, "1") is TicketState.RESOLVED, "resolved")
    history = await wecom_bot.store.history("1")
    assert [e.data["note"] for e in history if e.kind.value == "resolved"] == ["路灯已更换"]
    # The response_url is spent: the resident is asked to confirm through the group's webhook.
    asked = await wait_for(
        lambda: [p for p in fake.pushes if p.key == KEY_H01], "the resident asked to confirm"
    )
    assert "「确认 1」" in asked[0].text and "「重开 1 说明」" in asked[0].text
    # The resident confirms with an @-mention command: the ticket closes.
    await fake.post(fake.message(RESIDENT, "@联户 确认 1", chatid=H01))
    await wait_for(lambda: _state(wecom_bot, "1") is TicketState.CLOSED, "closed")
    assert fake.unexpected == [] and fake.refused == [] and fake.problems == []


async def test_join_in_a_single_chat_enrols_the_wecom_user(
    fake_wecom: FakeWeCom, wecom_bot: WeComBot
) -> None:
    from bot.core.enrolment import Invite
    from bot.core.org import Role

    code = await wecom_bot.bindings.create_invite(Invite(Role.GRID_WORKER, "G-03"), "cli")
    answer = await fake_wecom.post(fake_wecom.message("newworker", f"/join {code}"))
    assert answer.reply is not None and answer.reply["msgtype"] == "stream"
    await wecom_bot.config.refresh(wecom_bot.bindings, force=True)
    person = wecom_bot.config.context.tree.people.get("enrolled:wecom:newworker")
    assert person is not None and (person.role, person.scope) == (Role.GRID_WORKER, "G-03")


async def test_url_verification(fake_wecom: FakeWeCom, wecom_bot: WeComBot) -> None:
    ok = await fake_wecom.verify_url("1288432023552776189")
    assert (ok.status, ok.text) == (200, "1288432023552776189")
    forged = await fake_wecom.verify_url("x", signature="0" * 40)
    assert forged.status == 403
    wrong_key = await fake_wecom.verify_url("x", cipher=WeComCipher.of(TOKEN, OTHER_AES_KEY))
    assert wrong_key.status == 400


async def test_bad_callbacks_are_refused_and_never_stored(
    fake_wecom: FakeWeCom, wecom_bot: WeComBot, redis_async: redis.asyncio.Redis
) -> None:
    fake = fake_wecom
    msg = fake.message(RESIDENT, f"@联户 {LIGHT}", chatid=H01)
    query, body = fake.envelope(msg)
    forged = dict(query, msg_signature="f" * 40)
    assert (await fake.post(query=forged, body=json.dumps(body).encode())).status == 403
    other_token = WeComCipher.of("another-token", AES_KEY)
    assert (await fake.post(msg, cipher=other_token)).status == 403
    wrong_key = WeComCipher.of(TOKEN, OTHER_AES_KEY)
    assert (await fake.post(msg, cipher=wrong_key)).status == 400
    stale = str(int(time.time()) - 3600)
    assert (await fake.post(msg, timestamp=stale)).status == 403
    future = str(int(time.time()) + 3600)
    assert (await fake.post(msg, timestamp=future)).status == 403
    # Padding: real AES under the right key and a signature over it, but no PKCS#7 to 32.
    bad = _badly_padded()
    ts, nonce = str(int(time.time())), "4242"
    q = {"msg_signature": fake.cipher.sign(ts, nonce, bad), "timestamp": ts, "nonce": nonce}
    assert (await fake.post(query=q, body=json.dumps({"encrypt": bad}).encode())).status == 400
    huge = json.dumps({"encrypt": "A" * 200_000}).encode()
    assert (await fake.post(query=query, body=huge)).status == 413
    for junk in (b"not json", b"[]", b'{"encrypt": 5}', b"{}"):
        assert (await fake.post(query=query, body=junk)).status == 400
    assert (await fake.post(query={}, body=json.dumps(body).encode())).status == 400
    not_json = fake.cipher.encrypt(b"<xml/>")
    q2 = {"msg_signature": fake.cipher.sign(ts, "77", not_json), "timestamp": ts, "nonce": "77"}
    assert (
        await fake.post(query=q2, body=json.dumps({"encrypt": not_json}).encode())
    ).status == 400
    other_robot = dict(msg, aibotid="someone-else")
    assert (await fake.post(other_robot)).status == 403
    assert await redis_async.xlen(keys.inbox("wecom")) == 0
    assert await redis_async.keys("lianhu:update:wecom:*") == []
    # The genuine callback is accepted once; the same request replayed (same nonce) is refused.
    assert (await fake.post(query=query, body=json.dumps(body).encode())).status == 200
    replay = await fake.post(query=query, body=json.dumps(body).encode())
    assert replay.status == 403 and "nonce" in replay.text
    assert await redis_async.keys("lianhu:update:wecom:*") != []


def _badly_padded() -> str:
    import base64

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from bot.wecom.crypto import aes_key

    key = aes_key(AES_KEY)
    plain = b"\x00" * 16 + b"\x00\x00\x00\x02{}" + b"\x00" * 10  # last byte 0: no padding
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def _state(bot: WeComBot, ticket_id: str) -> TicketState | None:
    import redis as sync_redis

    with sync_redis.Redis.from_url(bot.settings.redis_url or "") as r:
        ticket, _ = stored_ticket(r, ticket_id)
    return ticket.state if ticket else None
