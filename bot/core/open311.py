"""Open311 GeoReport v2: the categories as services, requests in, tickets out as requests.

Pure: reading a POSTed request into what the shell opens a ticket from, finding its place
in the tree, and the JSON shapes of the spec (services, requests, errors). The shell
(bot/open311.py) checks the client's key, opens the ticket through the ordinary path and
reads tickets back.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import InvalidConfig, Problem
from bot.core.models import NONE_CATEGORY, Lang
from bot.core.org import Node, NodeKind, OrgTree
from bot.core.rules import RuleSet
from bot.core.text import normalise
from bot.core.ticket import Ticket, TicketState
from bot.core.yamldoc import Document

MAX_TEXT = 4000  # characters of a description; a chat message is at most 4,096


class InvalidClients(InvalidConfig):
    """The Open311 clients file did not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientSpec(_Strict):
    """One client of the API: its name, key and the place requests without one go to."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    key: Annotated[str, Field(pattern=r"^[\x21-\x7e]{24,256}$")]
    node: str | None = None


class _ClientsFile(_Strict):
    clients: list[ClientSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Client:
    """A client the API knows."""

    name: str
    key: str
    node: str | None


def build_clients(doc: Document, tree: OrgTree) -> tuple[Client, ...]:
    """Validate a parsed clients file; raise InvalidClients naming every problem."""
    try:
        spec = _ClientsFile.model_validate(doc.data)
    except ValidationError as exc:
        raise InvalidClients(doc.validation_problems(exc)) from None
    problems: list[Problem] = []
    names: set[str] = set()
    for i, c in enumerate(spec.clients):
        if c.node is not None and not _place(tree, c.node):
            problems.append(doc.problem(("clients", i, "node"), f"no place {c.node!r}"))
        if c.name in names:
            problems.append(doc.problem(("clients", i, "name"), f"{c.name!r} named twice"))
        names.add(c.name)
    if len({c.key for c in spec.clients}) != len(spec.clients):
        problems.append(doc.problem(("clients",), "two clients share a key"))
    if problems:
        raise InvalidClients(problems)
    return tuple(Client(c.name, c.key, c.node) for c in spec.clients)


def _place(tree: OrgTree, node_id: str) -> Node | None:
    node = tree.nodes.get(node_id)
    return node if node is not None and node.kind is not NodeKind.DEPARTMENT else None


# -- services --------------------------------------------------------------------------------


def services(ruleset: RuleSet, lang: Lang = Lang.ZH_HANS) -> list[dict[str, Any]]:
    """Return the categories as GeoReport services (service_code is the category id)."""
    out = []
    for category in ruleset.categories.values():
        if category.id == NONE_CATEGORY:
            continue
        words = [k for r in ruleset.rules if r.category == category.id for k in r.keywords[:5]][:8]
        out.append(
            {
                "service_code": category.id,
                "service_name": category.name(lang),
                "description": category.name(Lang.EN),
                "metadata": False,
                "type": "realtime",
                "keywords": ", ".join(words),
                "group": category.start_tier.value,
            }
        )
    return out


# -- a POSTed request ----------------------------------------------------------------------------


class Open311Error(Exception):
    """A request the API refuses: the HTTP status, and the spec's ``description``."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description

    def body(self) -> list[dict[str, Any]]:
        """Return the spec's error list."""
        return [{"code": self.code, "description": self.description}]


@dataclass(frozen=True)
class NewRequest:
    """A request to open, as read from the form."""

    service_code: str | None
    description: str
    node: str
    location: tuple[float, float] | None
    name: str


def read_request(
    form: Mapping[str, str], ruleset: RuleSet, tree: OrgTree, client: Client
) -> NewRequest:
    """Return the request a form describes; raise Open311Error (400) saying what is wrong."""
    code = (form.get("service_code") or "").strip() or None
    if code is not None and (code not in ruleset.categories or code == NONE_CATEGORY):
        raise Open311Error(400, f"service_code {code!r} not found; GET services.json lists them")
    description = (form.get("description") or "").strip()
    if len(description) > MAX_TEXT:
        raise Open311Error(400, f"description: at most {MAX_TEXT} characters")
    if code is None and not description:
        raise Open311Error(400, "service_code or description is required")
    location = _location(form)
    node = locate(form, tree, client)
    if node is None:
        raise Open311Error(
            400,
            "location: give attribute[node] (a node id), an address_string naming a place, "
            "or lat and long (for a client with a default place)",
        )
    if location is None and not (form.get("address_string") or form.get("attribute[node]")):
        raise Open311Error(400, "location: lat and long, address_string or attribute[node]")
    first, last = (form.get("first_name") or "").strip(), (form.get("last_name") or "").strip()
    name = f"{last}{first}" if _cjk(last + first) else f"{first} {last}".strip()
    return NewRequest(code, description, node, location, name[:64] or client.name)


def _location(form: Mapping[str, str]) -> tuple[float, float] | None:
    lat, long = form.get("lat"), form.get("long")
    if lat is None and long is None:
        return None
    try:
        point = (float(lat or ""), float(long or ""))
    except ValueError:
        raise Open311Error(400, "lat and long: two decimal numbers") from None
    if not all(math.isfinite(v) for v in point) or abs(point[0]) > 90 or abs(point[1]) > 180:
        raise Open311Error(400, "lat and long: latitude -90..90 and longitude -180..180")
    return point


def locate(form: Mapping[str, str], tree: OrgTree, client: Client) -> str | None:
    """Return the node of a request: attribute[node], a place named in the address, or the
    client's own place."""
    given = (form.get("attribute[node]") or "").strip()
    if given:
        node = _place(tree, given)
        if node is None:
            raise Open311Error(400, f"attribute[node]: no place {given!r}")
        return node.id
    address = normalise(form.get("address_string") or "")
    if address:
        named = [
            (len(key), node.id)
            for node in tree.nodes.values()
            if node.kind is not NodeKind.DEPARTMENT
            for key in {normalise(n) for n in (node.name, *node.names.values())}
            if key and key in address
        ]
        if named:
            return max(named)[1]  # the longest name found: the most precise place
    return client.node


def _cjk(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


# -- requests out ----------------------------------------------------------------------------


def status_of(ticket: Ticket) -> str:
    """Return the GeoReport status: closed once resolved, closed or dismissed."""
    done = (TicketState.RESOLVED, TicketState.CLOSED, TicketState.DISMISSED)
    return "closed" if ticket.state in done else "open"


def request_view(
    ticket: Ticket, account: str, ruleset: RuleSet, tree: OrgTree, zone: dt.tzinfo
) -> dict[str, Any]:
    """Return a ticket as a GeoReport request, as the client ``account`` may see it.

    A client that joined someone else's ticket sees its state and dates, not what the
    first reporter wrote (as a co-reporter in chat).
    """
    first = ticket.reporter.account == account
    category = ruleset.categories.get(ticket.category)
    node, origin = tree.nodes.get(ticket.node), tree.nodes.get(ticket.origin)
    return {
        "service_request_id": ticket.id,
        "status": status_of(ticket),
        "status_notes": ticket.resolution or None if first else None,
        "service_name": category.name() if category else ticket.category,
        "service_code": ticket.category,
        "description": ticket.text if first else None,
        "agency_responsible": node.name if node else ticket.node,
        "service_notice": None,
        "requested_datetime": _iso(ticket.created_at, zone),
        "updated_datetime": _iso(ticket.updated_at, zone),
        "expected_datetime": _iso(ticket.resolve_due, zone),
        "address": origin.name if origin else ticket.origin,
        "address_id": ticket.origin,
        "zipcode": None,
        "lat": ticket.location[0] if ticket.location and first else None,
        "long": ticket.location[1] if ticket.location and first else None,
        "media_url": None,
    }


def _iso(epoch: float | None, zone: dt.tzinfo) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, zone).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Query:
    """The filters of GET requests.json."""

    ids: tuple[str, ...] = ()
    service_code: str | None = None
    status: str | None = None
    start: float | None = None
    end: float | None = None


def read_query(params: Mapping[str, str]) -> Query:
    """Return the filters of a GET requests.json; raise Open311Error (400) on a bad one."""
    ids = tuple(i.strip() for i in (params.get("service_request_id") or "").split(",") if i.strip())
    if any(not i.isdigit() for i in ids):
        raise Open311Error(400, "service_request_id: ticket numbers, comma-separated")
    status = params.get("status") or None
    if status not in (None, "open", "closed"):
        raise Open311Error(400, "status: open or closed")
    return Query(ids, params.get("service_code") or None, status,
                 _date(params, "start_date"), _date(params, "end_date"))  # fmt: skip


def _date(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name}: a date and time in ISO 8601 (w3 format)") from None
    if when.tzinfo is None:
        raise Open311Error(400, f"{name}: give the time zone (such as +08:00 or Z)")
    return when.timestamp()


def selected(ticket: Ticket, query: Query) -> bool:
    """Return whether ``ticket`` passes the filters."""
    return (
        (not query.ids or ticket.id in query.ids)
        and (query.service_code is None or ticket.category == query.service_code)
        and (query.status is None or status_of(ticket) == query.status)
        and (query.start is None or ticket.created_at >= query.start)
        and (query.end is None or ticket.created_at <= query.end)
    )


__all__: Sequence[str] = (
    "Client",
    "InvalidClients",
    "NewRequest",
    "Open311Error",
    "Query",
    "build_clients",
    "locate",
    "read_query",
    "read_request",
    "request_view",
    "selected",
    "services",
    "status_of",
)
