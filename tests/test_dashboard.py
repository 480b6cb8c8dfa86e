"""The dashboard's figures on hand-made tickets, its SVG charts, and its monthly CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bot.core import dashboard as board
from bot.core.deadlines import Policy
from bot.core.org import OrgTree, Person
from bot.core.ticket import EventKind, Ticket, TicketEvent, replay
from bot.live import LiveConfig
from bot.web import charts
from bot.web.dashboard import table_csv
from bot.web.pages import Pages
from tests.conftest import ROOT, RULES_DIR

ORG = ROOT / "org" / "sample_street.yaml"
TZ = dt.timezone(dt.timedelta(hours=8))
HOUR, DAY = 3600.0, 86400.0
# Wednesday 2026-06-10 12:00 in China: "now" for every test.
NOW = dt.datetime(2026, 6, 10, 12, 0, tzinfo=TZ).timestamp()
TREE: OrgTree = LiveConfig(RULES_DIR, ORG, Policy()).tree
STREET = TREE.people["p-luo-bingkun"]
VILLAGE_CADRE = TREE.people["p-yang-zixuan"]  # V-01: grids G-01, G-02
GRID_WORKER = TREE.people["p-zhong-zhiwei"]  # G-01
LEADER = TREE.people["p-luo-jiahao"]  # household leader of H-01
RESIDENT = "sim:p-chen-zhiqiang"  # lives in H-01


class Story:
    """A ticket's history, written event by event."""

    def __init__(
        self,
        tid: str,
        at: float,
        *,
        node: str = "G-01",
        origin: str = "H-01",
        category: str = "water",
        visibility: str = "public",
        ack: float = HOUR,
        resolve: float = DAY,
    ) -> None:
        tier = TREE.nodes[node].kind.value
        reporter = {"account": RESIDENT, "name": "陈志强", "chat": "sim:H-01", "message_id": tid}
        data = {
            "category": category, "severity": "normal", "urgent": False,
            "visibility": visibility, "text": "停水", "origin": origin, "node": node,
            "tier": tier, "reporter": reporter, "ack_due": at + ack, "resolve_due": at + resolve,
        }  # fmt: skip
        self.tid = tid
        self.events = [
            TicketEvent(tid, 1, EventKind.OPENED, at, RESIDENT, "陈志强", "sim:H-01", data)
        ]

    def then(self, kind: EventKind, at: float, **data: Any) -> Story:
        seq = len(self.events) + 1
        self.events.append(TicketEvent(self.tid, seq, kind, at, "sim:x", "x", None, data))
        return self

    def up(self, at: float, node: str, ack: float = HOUR, resolve: float = DAY) -> Story:
        tier = TREE.nodes[node].kind.value
        due = {"ack_due": at + ack, "resolve_due": at + resolve}
        return self.then(EventKind.ESCALATED, at, node=node, tier=tier, **due, reason="up")

    @property
    def ticket(self) -> Ticket:
        return replay(self.events)


def build(stories: list[Story], person: Person = STREET) -> board.Dashboard:
    return board.build(
        TREE, person, [s.ticket for s in stories], [s.events for s in stories], NOW, TZ
    )


ACK, RES, RATED = EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.RATED


# -- counts ------------------------------------------------------------------------------


def test_states_and_tiers_count_recent_and_unfinished_tickets() -> None:
    stories = [
        Story("1", NOW - 2 * HOUR),  # open at G-01
        Story("2", NOW - 3 * HOUR).then(ACK, NOW - 2.5 * HOUR),  # acknowledged at G-01
        Story("3", NOW - 5 * HOUR).up(NOW - 4 * HOUR, "V-01"),  # escalated to V-01
        Story("4", NOW - 40 * DAY).then(EventKind.CLOSED, NOW - 39 * DAY),  # old and done
        Story("5", NOW - 40 * DAY),  # old but still open: it counts
        Story("6", NOW - DAY).then(EventKind.DISMISSED, NOW - 20 * HOUR, reason="no"),
    ]
    b = build(stories)
    assert b.current == 5
    assert {s: n for s, n in b.states.items() if n} == {
        "open": 2, "acknowledged": 1, "escalated": 1, "dismissed": 1,
    }  # fmt: skip
    assert set(b.states) == set(board.STATES)
    assert {t: {s: n for s, n in c.items() if n} for t, c in b.tiers.items()} == {
        "grid": {"open": 2, "acknowledged": 1, "dismissed": 1},
        "village": {"escalated": 1},
    }


def test_overdue_now_splits_acknowledgement_from_resolution() -> None:
    stories = [
        Story("1", NOW - 2 * HOUR),  # ack due an hour ago
        Story("1b", NOW - 3 * HOUR, node="G-03", origin="H-06"),  # and two hours ago
        Story("2", NOW - 30 * HOUR).then(ACK, NOW - 29.5 * HOUR),  # resolve due 6 h ago
        Story("3", NOW - 30 * HOUR).then(ACK, NOW - 29.5 * HOUR).then(RES, NOW - HOUR, note="x"),
        Story("4", NOW - 10 * 60),  # not due yet
    ]
    b = build(stories)
    assert (b.overdue_ack, b.overdue_resolve, b.overdue) == (2, 1, 3)


# -- the three rates ------------------------------------------------------------------------

MON = dt.datetime(2026, 6, 8, 9, 0, tzinfo=TZ).timestamp()  # Monday of this week
LAST_WEEK = MON - 7 * DAY
LAST_MONTH = dt.datetime(2026, 5, 20, 9, 0, tzinfo=TZ).timestamp()


def rated_stories() -> list[Story]:
    return [
        # This week: acknowledged in time, resolved in time, rated 5.
        Story("1", MON).then(ACK, MON + 0.5 * HOUR).then(RES, MON + 2 * HOUR, note="ok")
        .then(RATED, MON + 3 * HOUR, rating=5),
        # This week: acknowledged late, resolved late, rated 2.
        Story("2", MON).then(ACK, MON + 2 * HOUR).then(RES, MON + 2 * DAY, note="ok")
        .then(RATED, MON + 2 * DAY + HOUR, rating=2),
        # Last week: left unacknowledged (escalated): a missed ack and resolution at G-01.
        Story("3", LAST_WEEK).up(LAST_WEEK + 2 * HOUR, "V-01"),
        # Last month: acknowledged in time.
        Story("4", LAST_MONTH).then(ACK, LAST_MONTH + 0.2 * HOUR),
    ]  # fmt: skip


def test_rates_per_week_and_month_count_promises_decided_in_them() -> None:
    b = build(rated_stories())
    assert len(b.weeks) == board.WEEKS and len(b.months) == board.MONTHS
    this, last = b.weeks[-1], b.weeks[-2]
    assert this.key == "2026-W24" and this.first == dt.date(2026, 6, 8)
    assert this.rates == board.Rates(board.Rate(1, 2), board.Rate(1, 2), board.Rate(1, 2))
    assert this.reported == 2
    # The escalation misses G-01's promises; V-01's stage is not decided yet.
    assert last.rates == board.Rates(board.Rate(0, 1), board.Rate(0, 1), board.Rate())
    assert last.rates.satisfaction.value is None  # one dash on the page, not 0%
    june, may = b.months[-1], b.months[-2]
    assert (june.key, may.key) == ("2026-06", "2026-05")
    assert june.rates.ack == board.Rate(1, 3) and june.reported == 3
    assert may.rates == board.Rates(board.Rate(1, 1), board.Rate(), board.Rate())
    assert all(p.rates == board.Rates() for p in b.months[:-2])


def test_a_grid_worker_is_judged_at_the_grid_only_and_the_cadre_at_the_village() -> None:
    stories = [
        Story("1", MON).up(MON + 2 * HOUR, "V-01").then(ACK, MON + 2.5 * HOUR),
    ]
    grid = build(stories, GRID_WORKER).weeks[-1].rates
    village = build(stories, VILLAGE_CADRE).weeks[-1].rates
    assert grid.ack == board.Rate(0, 1)  # the grid missed it
    assert village.ack == board.Rate(1, 2)  # the grid's miss and the village's hit, both below V-01


# -- who sees what ----------------------------------------------------------------------------


def test_staff_only_tickets_stay_with_the_scopes_that_handle_them() -> None:
    stories = [
        Story("1", NOW - HOUR, category="family", visibility="staff"),
        Story("2", NOW - HOUR),
        Story("3", NOW - HOUR, node="G-03", origin="H-06"),  # another village's grid
    ]
    assert build(stories, LEADER).current == 1  # the public one of their household
    assert build(stories, GRID_WORKER).current == 2
    assert [c.category for c in build(stories, GRID_WORKER).categories] == ["family", "water"]
    assert build(stories, STREET).current == 3


# -- ranking, mix, trend ------------------------------------------------------------------------


def test_villages_and_grids_rank_by_resolution_on_time_then_acknowledgement() -> None:
    at = NOW - 2 * DAY
    stories = [
        Story("1", at).then(ACK, at + 2 * HOUR).then(RES, at + HOUR * 3, note="ok"),  # G-01
        Story("2", at, node="G-02", origin="H-04").then(ACK, at + 0.5 * HOUR)
        .then(RES, at + 2 * DAY, note="late"),  # G-02: late resolution
        Story("3", at, node="G-03", origin="H-06").then(ACK, at + 0.5 * HOUR)
        .then(RES, at + 2 * HOUR, note="ok"),  # G-03: all in time
        Story("4", NOW - 2 * HOUR, node="G-04", origin="H-09"),  # G-04: overdue, nothing decided
        Story("5", NOW - 40 * DAY, node="G-03", origin="H-06")
        .then(EventKind.CLOSED, NOW - 39 * DAY),  # before the ranking's 30 days
        Story("6", NOW - 40 * DAY, node="G-02", origin="H-04").then(ACK, NOW - 40 * DAY + 60)
        .then(RES, NOW - 40 * DAY + HOUR, note="ok"),  # G-02 kept both, but too long ago
    ]  # fmt: skip
    ranked = build(stories).ranking
    # Villages among villages, then grids among grids; V-02 ties with its grid G-03 and has more.
    assert [r.node for r in ranked] == ["V-02", "V-01", "G-03", "G-01", "G-02", "G-04"]
    v02 = next(r for r in ranked if r.node == "V-02")
    assert (v02.reported, v02.open, v02.overdue) == (2, 1, 1)
    assert v02.rates.resolve == board.Rate(1, 1)
    g02 = next(r for r in ranked if r.node == "G-02")
    assert (g02.reported, g02.rates.ack, g02.rates.resolve) == (
        1,
        board.Rate(1, 1),
        board.Rate(0, 1),
    )
    assert [r.node for r in build(stories, GRID_WORKER).ranking] == ["G-01"]


def test_category_mix_splits_active_from_finished_most_first() -> None:
    stories = [
        Story("1", NOW - HOUR, category="noise"),
        Story("2", NOW - HOUR, category="water").then(ACK, NOW - 0.5 * HOUR),
        Story("3", NOW - HOUR, category="water").then(RES, NOW - 0.5 * HOUR, note="x"),
        Story("4", NOW - HOUR, category="water").then(EventKind.DISMISSED, NOW, reason="no"),
    ]
    mix = build(stories).categories
    assert [(c.category, c.active, c.finished) for c in mix] == [("water", 1, 2), ("noise", 1, 0)]


def test_new_tickets_per_day_are_counted_on_local_days() -> None:
    just_after_midnight = dt.datetime(2026, 6, 10, 0, 30, tzinfo=TZ).timestamp()  # 16:30 UTC
    stories = [
        Story("1", just_after_midnight),
        Story("2", just_after_midnight - HOUR),  # 23:30 the day before
        Story("3", NOW - 29 * DAY),
        Story("4", NOW - 31 * DAY),  # before the trend
    ]
    days = build(stories).days
    assert len(days) == board.RECENT_DAYS
    assert days[-1] == (dt.date(2026, 6, 10), 1)
    assert days[-2] == (dt.date(2026, 6, 9), 1)
    assert days[0] == (dt.date(2026, 5, 12), 1)
    assert sum(n for _, n in days) == 3


# -- the monthly table --------------------------------------------------------------------------


def test_month_bounds_accept_only_year_dash_month() -> None:
    start, end = board.month_bounds("2026-06", TZ)
    assert start == dt.datetime(2026, 6, 1, tzinfo=TZ).timestamp()
    assert end == dt.datetime(2026, 7, 1, tzinfo=TZ).timestamp()
    assert board.month_bounds("2026-12", TZ)[1] == dt.datetime(2027, 1, 1, tzinfo=TZ).timestamp()
    for bad in ("2026-13", "2026-00", "2026-6", "２０２６-06", "june", "", "2026-06-01"):
        with pytest.raises(board.BadMonth):
            board.month_bounds(bad, TZ)


def test_month_table_has_a_line_per_node_served_and_a_total() -> None:
    start, end = board.month_bounds("2026-06", TZ)
    stories = rated_stories()
    stories.append(Story("5", MON, node="G-03", origin="H-06").then(ACK, MON + HOUR * 5))
    lines = board.month_table(
        TREE, STREET, [s.ticket for s in stories], [s.events for s in stories], start, end
    )
    got = {line.node: (line.received, line.rates) for line in lines}
    assert list(got) == ["V-01", "G-01", "G-03", ""]  # tree order, the total last
    assert got["G-01"] == (3, board.Rates(board.Rate(1, 3), board.Rate(1, 3), board.Rate(1, 2)))
    assert got["V-01"] == (1, board.Rates())  # received the escalation, decided nothing yet
    assert got["G-03"][1].ack == board.Rate(0, 1)
    assert got[""][0] == 4  # tickets 1, 2, 3 and 5, each once
    mine = board.month_table(
        TREE, GRID_WORKER, [s.ticket for s in stories], [s.events for s in stories], start, end
    )
    assert [line.node for line in mine] == ["G-01", ""]


def test_the_csv_starts_with_a_bom_and_writes_counts_beside_rates() -> None:
    lines = [
        board.NodeMonth("G-01", 3, board.Rates(board.Rate(2, 3), board.Rate(1, 2), board.Rate())),
        board.NodeMonth("", 3, board.Rates(board.Rate(2, 3), board.Rate(1, 2), board.Rate())),
    ]
    words = Pages().words_in(board_lang("zh-Hans"))
    text = table_csv(lines, TREE, board_lang("zh-Hans"), words.rates_csv, words.tiers)
    assert text.startswith("\ufeff节点编号,名称,层级,收件数,及时受理数")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[1] == ["G-01", "东联村第一网格", "网格", "3", "2", "3", "66.7%", "1", "2", "50.0%",
                       "0", "0", "—"]  # fmt: skip
    assert rows[2][:4] == ["", "合计", "", "3"]
    words = Pages().words_in(board_lang("en"))
    english = table_csv(lines, TREE, board_lang("en"), words.rates_csv, words.tiers)
    assert english.splitlines()[1].startswith("G-01,Donglian Grid 1,grid,3")


def board_lang(code: str) -> Any:
    from bot.core.models import Lang

    return Lang(code)


# -- charts -------------------------------------------------------------------------------------

HOSTILE = "<script>alert(\"x\")</script> & 'q'"


def test_chart_labels_and_links_are_escaped_and_the_svg_is_well_formed() -> None:
    svg = str(
        charts.hbars(
            [(HOSTILE, [2, 1], '/tickets?category="><script>'), ("水电气", [0, 3], None)],
            ident="c1",
            title=HOSTILE,
            desc="d & <b>",
            legend=[HOSTILE, "已办结"],
        )
    )
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)  # raises on a stray < or &
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{ns}title").text == HOSTILE  # type: ignore[union-attr]
    assert root.find(f"{ns}desc").text == "d & <b>"  # type: ignore[union-attr]
    link = root.find(f".//{ns}a")
    assert link is not None and link.get("href") == '/tickets?category="><script>'
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "水电气" in texts and "3" in texts


def test_a_line_breaks_where_there_is_no_data_and_percent_axes_run_to_100() -> None:
    svg = str(
        charts.line(
            ["a", "b", "c", "d", "e"],
            [("x<y", [0.5, 1.0, None, 0.25, 0.75]), ("z", [None, None, None, None, None])],
            ident="c2",
            title="t",
            desc="d",
            percent=True,
        )
    )
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2  # a-b and d-e: no line across c
    assert len(root.findall(f"{ns}circle")) == 4
    ticks = [t.text for t in root.iter(f"{ns}text")]
    assert "100%" in ticks and "0%" in ticks
    assert "x&lt;y" in svg


def test_count_axes_end_on_round_quarters() -> None:
    svg = str(charts.line(["a", "b"], [("n", [5, 1])], ident="c3", title="t", desc="d"))
    ns = "{http://www.w3.org/2000/svg}"
    ticks = [t.text for t in ET.fromstring(svg).iter(f"{ns}text")]
    assert ticks[:5] == ["0", "2", "4", "6", "8"]
