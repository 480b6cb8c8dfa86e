"""The translation layer, the admin commands, the overlay and the rate limits' arithmetic."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

import pytest
from telegram import Bot, Update

from bot.adapters.telegram import reply_markup, to_incoming
from bot.core.deadlines import Policy
from bot.core.enrolment import AdminCommand, AdminRefusal, Binding, Enrolment, overlay, parse_admin
from bot.core.org import Role, node_of_chat, person_of_account
from bot.live import LiveConfig
from bot.telegram.ratelimit import IN_FLIGHT_POLL, MARGIN, Limits, RateLimiter
from tests.fake_bot_api import TOKEN, FakeBotApi
from tests.telegram_fixtures import ORG, RULES_DIR

TREE = LiveConfig(RULES_DIR, ORG, Policy()).tree
BOT = Bot(TOKEN)
FAKE = FakeBotApi()
H01 = -1001000000131


def update(data: dict[str, Any]) -> Update:
    return Update.de_json(data, BOT)


def test_a_message_with_text_photo_location_and_reply() -> None:
    data = FAKE.message(H01, 100001, "", reply_to=77, caption="井盖不见了",
                        photo=[{"file_id": "small", "file_unique_id": "s", "width": 1, "height": 1},
                               {"file_id": "big", "file_unique_id": "b", "width": 9, "height": 9}],
                        location={"latitude": 22.7, "longitude": 114.5})  # fmt: skip
    data["message"].pop("text")
    m = to_incoming(update(data), TREE)
    assert m is not None
    assert (m.chat, m.text, m.photos, m.location, m.reply_to) == (
        f"telegram:{H01}",
        "井盖不见了",
        ("big",),
        (22.7, 114.5),
        "77",
    )
    assert m.sender.account == "telegram:100001" and m.sender.person == "p-chen-zhiqiang"


def test_a_button_press_quotes_its_card() -> None:
    card = FAKE.message(-1001000000111, 123456, "card")["message"]
    data = {"update_id": 1, "callback_query": {"id": "9", "chat_instance": "c", "data": "ack:3",
            "from": {"id": 100026, "is_bot": False, "first_name": "杨"}, "message": card}}  # fmt: skip
    m = to_incoming(update(data), TREE)
    assert m is not None and m.callback == "ack:3"
    assert m.message_id == f"{card['message_id']}#cb9"


@pytest.mark.parametrize(
    "data",
    [
        FAKE.message(H01, 100001, "/ack 1", edited=True),  # an edit that reads as a command
        FAKE.message(H01, 100001, "/bind grid:G-01", edited=True),
        FAKE.message(
            H01, 100001, "", new_chat_members=[{"id": 5, "is_bot": False, "first_name": "x"}]
        ),
        {
            **FAKE.message(H01, 100001, "路灯坏了"),
            "message": {
                **FAKE.message(H01, 100001, "路灯坏了")["message"],
                "from": {"id": 9, "is_bot": True, "first_name": "OtherBot"},
            },
        },
        {
            **FAKE.message(H01, 1087968824, "路灯坏了"),
            "message": {
                **FAKE.message(H01, 1087968824, "路灯坏了")["message"],
                "sender_chat": {"id": H01, "type": "supergroup", "title": "g"},
            },
        },
        {
            "update_id": 5,
            "channel_post": {
                "message_id": 1,
                "date": 0,
                "text": "路灯坏了",
                "chat": {"id": -100777, "type": "channel"},
            },
        },
    ],
    ids=["edited-command", "edited-bind", "service", "other-bot", "anonymous-admin", "channel"],
)
def test_what_lianhu_ignores(data: dict[str, Any]) -> None:
    assert to_incoming(update(data), TREE) is None


def test_an_edit_is_a_report_with_the_original_message_key() -> None:
    first = FAKE.message(H01, 100001, "你好", message_id=42)
    edit = FAKE.message(H01, 100001, "路灯坏了半个月", message_id=42, edited=True, reply_to=9)
    a, b = to_incoming(update(first), TREE), to_incoming(update(edit), TREE)
    assert a is not None and b is not None and a.key == b.key and b.reply_to is None


def test_buttons_become_rows() -> None:
    markup = reply_markup((("受理", "ack:1"), ("★1", "rate:1:1"), ("★2", "rate:1:2")))
    assert markup is not None
    assert [[b.callback_data for b in row] for row in markup.inline_keyboard] == [
        ["ack:1"],
        ["rate:1:1", "rate:1:2"],
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/bind grid:G-03", AdminCommand(parse_admin("/bind grid:G-03").verb, target="grid:G-03")),  # type: ignore[union-attr]
        ("/bind@LianhuBot village:V-01 staff", "staff"),
        ("/invite grid_worker grid:G-03", "invite"),
        ("/join k7p3mx9q", "K7P3MX9Q"),
        ("/bind", AdminRefusal("bind_usage", {})),
        ("/invite mayor grid:G-03", AdminRefusal("invite_usage", {})),
        ("/join", AdminRefusal("join_usage", {})),
        ("bind grid:G-03", None),
    ],
)
def test_parse_admin(text: str, expected: object) -> None:
    got = parse_admin(text)
    if expected == "staff":
        assert isinstance(got, AdminCommand) and got.staff and got.target == "village:V-01"
    elif expected == "invite":
        assert isinstance(got, AdminCommand) and got.role == "grid_worker"
    elif expected == "K7P3MX9Q":
        assert isinstance(got, AdminCommand) and got.code == "K7P3MX9Q"
    else:
        assert got == expected


def test_overlay_adds_chats_and_people_but_the_file_wins() -> None:
    tree = overlay(
        TREE,
        {"telegram:-5": Binding("telegram:-5", "G-03"),
         "telegram:-6": Binding("telegram:-6", "G-03", staff=True),
         f"telegram:{H01}": Binding(f"telegram:{H01}", "G-03")},  # bound in the file: ignored
        {"telegram:9": Enrolment("telegram:9", "新人", Role.GRID_WORKER, "G-03")},
    )  # fmt: skip
    assert node_of_chat(tree, "telegram:-5").id == "G-03"  # type: ignore[union-attr]
    assert tree.nodes["G-03"].staff_chat == "telegram:-6"
    assert node_of_chat(tree, f"telegram:{H01}").id == "H-01"  # type: ignore[union-attr]
    person = person_of_account(tree, "telegram:9")
    assert person is not None and (person.role, person.scope) == (Role.GRID_WORKER, "G-03")
    assert node_of_chat(TREE, "telegram:-5") is None  # the file's tree is untouched


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _instant(limiter: RateLimiter) -> Callable[[int, float], None]:
    """Return a function that counts a send answered the moment it starts."""

    def take(chat_id: int, now: float) -> None:
        limiter.start(chat_id)
        limiter.finish(chat_id, now)

    return take


def test_the_real_limits_arithmetic() -> None:
    """20 a minute per group, 30 a second overall, 1 a second per private chat; 429 pauses."""
    clock = Clock()
    limiter = RateLimiter(Limits(), clock)
    take = _instant(limiter)
    group, other = -100, -200
    for _ in range(20):
        assert limiter.delay(group, 0.0) == 0
        take(group, 0.0)
    assert limiter.delay(group, 0.0) == pytest.approx(60 * (1 + MARGIN))
    assert limiter.delay(other, 0.0) == 0  # another group is not held back
    for i in range(10):
        take(-1000 - i, 0.0)
    assert limiter.delay(-5000, 0.0) == pytest.approx(1 + MARGIN)  # 30 in one second
    assert limiter.delay(-5000, 1.2) == 0
    take(7, 2.0)
    assert limiter.delay(7, 2.5) == pytest.approx(0.5 + MARGIN)
    clock.now = 3.0
    limiter.pause(4)
    assert limiter.delay(-5000, 3.0) == pytest.approx(4.0)
    # A day of one group: at most 20 in any minute, 1,440 minutes → at most 28,800 a day.
    day = RateLimiter(Limits(), clock)
    t, sent = 0.0, 0
    while t < 3600:
        wait = day.delay(group, t)
        if wait == 0:
            day.start(group)
            day.finish(group, t)
            sent += 1
        t += max(wait, 0.001)
    assert 20 * 55 <= sent <= 20 * 60  # an hour: a little under 1,200 because of the margin


def test_sends_in_flight_count_until_answered() -> None:
    """A send counts from its start until its answer, not from when it was granted."""
    limiter = RateLimiter(Limits(group=(2, 10.0)), Clock())
    period = 10 * (1 + MARGIN)
    limiter.start(-1)
    limiter.start(-1)
    assert limiter.delay(-1, 50.0) == IN_FLIGHT_POLL  # two still in flight, however long
    limiter.finish(-1, 51.0)
    assert limiter.delay(-1, 51.0) == pytest.approx(period)  # counted from its answer
    limiter.finish(-1, 52.0)
    assert limiter.delay(-1, 51.0 + period) == 0


@pytest.mark.parametrize("seed", range(3))
def test_no_window_is_exceeded_at_telegram_however_slow_the_way(seed: int) -> None:
    """100 chats, one lane each as in the sender; each request takes 0-0.5 s to reach
    Telegram and as long to be answered. By Telegram's clock: at most 20 a minute in any
    group, 1 a second in a private chat and 30 a second overall."""
    rng = random.Random(seed)
    limiter = RateLimiter(Limits(), Clock())
    chats = [-1 - i for i in range(80)] + [1 + i for i in range(20)]
    arrivals: dict[int, list[float]] = {chat: [] for chat in chats}
    # (time, tie-break, chat, an answer is due): lanes waking at one instant go in any order
    events = [(0.0, rng.random(), chat, False) for chat in chats]
    while events:
        t, _, chat, answered = heapq.heappop(events)
        if answered:
            limiter.finish(chat, t)
        if t > 200:
            continue
        wait = limiter.delay(chat, t)
        if wait > 0:
            heapq.heappush(events, (t + wait, rng.random(), chat, False))
            continue
        limiter.start(chat)
        arrive = t + rng.uniform(0, 0.5)  # the request on its way
        arrivals[chat].append(arrive)
        heapq.heappush(events, (arrive + rng.uniform(0, 0.5), rng.random(), chat, True))
    every = sorted(a for times in arrivals.values() for a in times)
    spans = [every[i + 30] - every[i] for i in range(len(every) - 30)]
    assert min(spans) >= 1.0
    assert min(spans) < 1.3  # the overall limit was reached, not avoided by sending slowly
    for chat, times in arrivals.items():
        limit, period = (20, 60.0) if chat < 0 else (1, 1.0)
        assert len(times) >= (20 if chat < 0 else 10)  # no chat starved
        assert all(times[i + limit] - times[i] >= period for i in range(len(times) - limit))
