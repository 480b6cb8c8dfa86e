"""The dashboard page (/dashboard) and the monthly three-rate table (/export/rates.csv).

A thin shell: it finds the viewer, loads the tickets that can matter and their
histories, and hands them to ``bot.core.dashboard``; the page's words and the
CSV's headings come from ``templates/web/lang``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from urllib.parse import urlencode

from aiohttp import web

from bot.core import dashboard as core
from bot.core.models import Lang
from bot.core.org import OrgTree
from bot.core.ticket import Ticket, TicketEvent
from bot.storage.redis import RedisStore
from bot.web import charts
from bot.web.app import CONFIG, PAGES, PARTS
from bot.web.pages import pick_lang
from bot.web.session import require_staff

DAY = 86400.0
# Tickets reported this long before the first month shown may still have promises decided
# in it; older ones count only while still open (they are then in a node's queue).
LOOKBACK = 62 * DAY
BOM = "\ufeff"  # so that Excel reads the CSV as UTF-8 and shows Chinese correctly


def add_routes(app: web.Application) -> None:
    """Register the dashboard's routes."""
    app.router.add_get("/dashboard", dashboard_page, name="dashboard")
    app.router.add_get("/export/rates.csv", rates_csv, name="rates_csv")


def href(**filters: str) -> str:
    """Return the ticket list's address with ``filters`` (its own query parameters).

    No ``state`` is the list's default (every unfinished ticket); ``state="all"`` is any state.
    """
    query = urlencode(filters)
    return f"/tickets?{query}" if query else "/tickets"


async def load(
    store: RedisStore, tree: OrgTree, since: float
) -> tuple[list[Ticket], list[list[TicketEvent]]]:
    """Return the tickets reported since ``since`` and older ones still open, with histories."""
    recent = await store.all_ids(since)
    queues = await store.queues(tree.nodes)
    ids = list(dict.fromkeys([*recent, *(i for q in queues.values() for i in q)]))
    tickets = await store.get_many(ids)
    return tickets, await store.histories([t.id for t in tickets])


async def dashboard_page(request: web.Request) -> web.Response:
    """Show the viewer's dashboard: states, overdue, the three rates, ranking, mix and trend."""
    viewer = await require_staff(request)
    parts, pages = request.app[PARTS], request.app[PAGES]
    ctx = request.app[CONFIG].context
    lang = pick_lang(request)
    now = parts.service.clock()
    first = core.first_shown(now, pages.tz)
    tickets, histories = await load(parts.service.store, ctx.tree, first - LOOKBACK)
    board = core.build(ctx.tree, viewer, tickets, histories, now, pages.tz)
    return pages.render(
        request,
        "dashboard.html",
        {
            "board": board,
            "viewer": viewer,
            "scope": ctx.tree.nodes[viewer.scope].display_name(lang),
            "names": {
                "nodes": {n.id: n.display_name(lang) for n in ctx.tree.nodes.values()},
                "categories": {
                    cid: c.names.get(lang) or cid for cid, c in ctx.ruleset.categories.items()
                },
            },
            "month": core.month_of(now, pages.tz),
            "now": now,
            "href": href,
            "recent_days": core.RECENT_DAYS,
            "charts": charts,
            "tiers": core.TIERS,
            "states": core.STATES,
        },
    )


async def rates_csv(request: web.Request) -> web.StreamResponse:
    """Return the month's three rates, a row per node the viewer serves, as CSV for Excel."""
    viewer = await require_staff(request)
    parts, pages = request.app[PARTS], request.app[PAGES]
    ctx = request.app[CONFIG].context
    lang = pick_lang(request)
    now = parts.service.clock()
    month = request.query.get("month") or core.month_of(now, pages.tz)
    try:
        start, end = core.month_bounds(month, pages.tz)
    except core.BadMonth:
        data = {"error": "bad_month", "detail": month}
        return pages.render(request, "error.html", data, status=400)
    tickets, histories = await load(parts.service.store, ctx.tree, start - LOOKBACK)
    lines = core.month_table(ctx.tree, viewer, tickets, histories, start, end)
    words = pages.words_in(lang)
    body = table_csv(lines, ctx.tree, lang, words.rates_csv, words.tiers)
    return web.Response(
        body=body.encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="lianhu-rates-{month}.csv"'},
    )


def table_csv(
    lines: Sequence[core.NodeMonth],
    tree: OrgTree,
    lang: Lang,
    heads: dict[str, str],
    tiers: dict[str, str],
) -> str:
    """Return the monthly table as CSV text starting with a byte-order mark."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([heads[k] for k in COLUMNS])
    for line in lines:
        node = tree.nodes.get(line.node)
        name = heads["total"] if node is None else node.display_name(lang)
        tier = "" if node is None else tiers[node.tier.value if node.tier else "department"]
        r = line.rates
        writer.writerow(
            [
                line.node,
                name,
                tier,
                line.received,
                *_rate(r.ack),
                *_rate(r.resolve),
                *_rate(r.satisfaction),
            ]
        )
    return out.getvalue()


COLUMNS = (
    "node",
    "name",
    "tier",
    "received",
    "acked_in_time",
    "ack_decided",
    "ack_rate",
    "resolved_in_time",
    "resolve_decided",
    "resolve_rate",
    "satisfied",
    "rated",
    "satisfaction_rate",
)


def _rate(rate: core.Rate) -> tuple[int, int, str]:
    value = rate.value
    return rate.hits, rate.of, "—" if value is None else f"{value * 100:.1f}%"
