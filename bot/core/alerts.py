"""Alerts from data feeds (water pressure, power) as tickets: the mapping file and the payloads.

An alert arrives as Alertmanager's webhook JSON (version 4) or as a small generic JSON
(README: "Alerts from data feeds"). A YAML file maps label matchers to a node and a
category, first match wins, as Alertmanager's own routes do:

    routes:
      - match: {alertname: WaterPressureLow, village: V-01}
        node: V-01
        category: utilities
      - match: {alertname: PowerOutage}
        node_label: node          # the node id is the value of this label
        category: utilities

Pure: the shell (bot/alerts.py) reads the request, checks its signature, calls these and
opens or resolves the tickets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.core.errors import InvalidConfig, Problem
from bot.core.models import NONE_CATEGORY
from bot.core.org import NodeKind, OrgTree
from bot.core.rules import RuleSet
from bot.core.yamldoc import Document

MAX_ALERTS = 100  # per request; Alertmanager's max_alerts should be set at or under this
_LABEL = Annotated[str, Field(min_length=1, max_length=200)]
_VALUE = Annotated[str, Field(max_length=1000)]
_FINGERPRINT = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class InvalidAlertRoutes(InvalidConfig):
    """The alert mapping file did not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteSpec(_Strict):
    """One route of the mapping file."""

    match: dict[_LABEL, _VALUE] = Field(min_length=1)
    node: str | None = None
    node_label: _LABEL | None = None
    category: str

    @model_validator(mode="after")
    def _one_node(self) -> RouteSpec:
        if (self.node is None) == (self.node_label is None):
            raise ValueError("give exactly one of node and node_label")
        return self


class _RoutesFile(_Strict):
    routes: list[RouteSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Route:
    """Label matchers, and where an alert they match becomes a ticket."""

    match: Mapping[str, str]
    node: str | None
    node_label: str | None
    category: str


def build_routes(doc: Document, tree: OrgTree, ruleset: RuleSet) -> tuple[Route, ...]:
    """Validate a parsed mapping file against the tree and rules; raise listing every problem."""
    try:
        spec = _RoutesFile.model_validate(doc.data)
    except ValidationError as exc:
        raise InvalidAlertRoutes(doc.validation_problems(exc)) from None
    problems: list[Problem] = []
    for i, route in enumerate(spec.routes):
        if route.node is not None and not _placeable(tree, route.node):
            problems.append(doc.problem(("routes", i, "node"), f"no place {route.node!r}"))
        if route.category not in ruleset.categories or route.category == NONE_CATEGORY:
            problems.append(
                doc.problem(("routes", i, "category"), f"no category {route.category!r}")
            )
    if problems:
        raise InvalidAlertRoutes(problems)
    return tuple(Route(dict(r.match), r.node, r.node_label, r.category) for r in spec.routes)


def _placeable(tree: OrgTree, node_id: str) -> bool:
    node = tree.nodes.get(node_id)
    return node is not None and node.kind is not NodeKind.DEPARTMENT


# -- payloads ------------------------------------------------------------------------------


class AlertStatus(StrEnum):
    """Whether an alert is firing or over."""

    FIRING = "firing"
    RESOLVED = "resolved"


class _Lenient(BaseModel):
    # Senders add fields over time: unknown keys are ignored, the ones we read are checked.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _ManagerAlert(_Lenient):
    status: AlertStatus
    labels: dict[_LABEL, _VALUE]
    annotations: dict[_LABEL, _VALUE] = {}
    startsAt: Annotated[str, Field(max_length=64)] = ""
    fingerprint: _FINGERPRINT


class _ManagerPayload(_Lenient):
    version: Literal["4"]
    status: AlertStatus
    receiver: Annotated[str, Field(max_length=200)] = ""
    alerts: list[_ManagerAlert] = Field(min_length=1, max_length=MAX_ALERTS)


class _GenericAlert(_Strict):
    id: _FINGERPRINT
    status: AlertStatus
    labels: dict[_LABEL, _VALUE] = Field(min_length=1)
    summary: Annotated[str, Field(max_length=1000)] = ""
    started_at: Annotated[str, Field(max_length=64)] = ""


class _GenericPayload(_Strict):
    source: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "feed"
    alerts: list[_GenericAlert] = Field(min_length=1, max_length=MAX_ALERTS)


@dataclass(frozen=True)
class Alert:
    """One alert, whichever format it came in."""

    source: str  # "alertmanager" or the generic payload's source
    fingerprint: str
    started: str  # with the fingerprint, one incident: a later firing is a new one
    status: AlertStatus
    labels: Mapping[str, str]
    summary: str

    @property
    def key(self) -> str:
        """Return the incident's key: the same alert firing again repeats it."""
        return f"{self.fingerprint}@{self.started}" if self.started else self.fingerprint


class BadPayload(ValueError):
    """A request body that is not an alert payload; the message says what is wrong."""


def parse_payload(data: Any) -> list[Alert]:
    """Return the alerts of an Alertmanager (version 4) or generic payload; raise BadPayload."""
    if not isinstance(data, dict):
        raise BadPayload("the body must be a JSON object")
    try:
        if "version" in data:
            manager = _ManagerPayload.model_validate(data)
            return [
                Alert(
                    "alertmanager",
                    a.fingerprint,
                    a.startsAt,
                    a.status,
                    a.labels,
                    _summary(a.annotations, a.labels),
                )
                for a in manager.alerts
            ]
        generic = _GenericPayload.model_validate(data)
    except ValidationError as exc:
        raise BadPayload(_first_error(exc)) from None
    return [
        Alert(
            generic.source,
            a.id,
            a.started_at,
            a.status,
            a.labels,
            a.summary or a.labels.get("alertname", a.id),
        )
        for a in generic.alerts
    ]


def _summary(annotations: Mapping[str, str], labels: Mapping[str, str]) -> str:
    for key in ("summary", "description", "message"):
        if annotations.get(key):
            return annotations[key]
    return labels.get("alertname", "alert")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


@dataclass(frozen=True)
class Target:
    """Where an alert becomes a ticket."""

    node: str
    category: str


def route(alert: Alert, routes: Sequence[Route], tree: OrgTree) -> Target | None:
    """Return where the first matching route puts ``alert``; None when none matches."""
    for r in routes:
        if all(alert.labels.get(k) == v for k, v in r.match.items()):
            node = r.node if r.node is not None else alert.labels.get(r.node_label or "", "")
            if not _placeable(tree, node):
                return None  # the label names no place: unrouted, said so in the answer
            return Target(node, r.category)
    return None


_MASK = re.compile(r"[\r\n\t]+")


def ticket_text(alert: Alert) -> str:
    """Return the text a ticket opened by ``alert`` shows (one line, with its name)."""
    name = alert.labels.get("alertname", "")
    summary = _MASK.sub(" ", alert.summary).strip()
    return f"[{name}] {summary}" if name and name not in summary else summary


__all__: Sequence[str] = (
    "Alert",
    "AlertStatus",
    "BadPayload",
    "InvalidAlertRoutes",
    "Route",
    "Target",
    "build_routes",
    "parse_payload",
    "route",
    "ticket_text",
)
