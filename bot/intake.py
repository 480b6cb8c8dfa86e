"""Other ways in besides the chats, mounted on an aiohttp app: alert webhooks and Open311.

Each is served only when its settings are given; a mapping or client file that does not
validate stops the start with every problem named (file, line, field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from bot.alerts import AlertIntake, add_alerts
from bot.live import LiveConfig
from bot.open311 import Open311, add_open311
from bot.settings import Settings
from bot.sources import load_alert_routes, load_open311_clients

if TYPE_CHECKING:
    from bot.services import Service


def mount_intake(
    app: web.Application, settings: Settings, config: LiveConfig, service: Callable[[], Service]
) -> list[str]:
    """Add the configured intake routes to ``app``; return the paths served."""
    served: list[str] = []
    if settings.alerts_file is not None and settings.alerts_secret is not None:
        routes = load_alert_routes(settings.alerts_file, config.tree, config.ruleset)
        secret = settings.alerts_secret.get_secret_value().encode()
        add_alerts(app, AlertIntake(secret, routes, service))
        served.append("/hooks/alerts")
    if settings.open311_clients is not None:
        clients = load_open311_clients(settings.open311_clients, config.tree)
        add_open311(app, Open311(clients, service))
        served.append("/open311/v2/")
    return served
