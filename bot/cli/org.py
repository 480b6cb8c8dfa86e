"""``lianhu org check | show | invite | revoke | audit``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.bindings import BindingStore, invite_params
from bot.cli.common import (
    default_org_file,
    default_rules_dir,
    print_table,
    report_invalid,
    report_settings,
)
from bot.core.alerts import InvalidAlertRoutes
from bot.core.enrolment import AdminRefusal, Enrolment, Invite, invite_for
from bot.core.errors import InvalidOrg, InvalidRules
from bot.core.models import Lang
from bot.core.open311 import InvalidClients
from bot.core.org import Node, OrgTree, Person, Role, check_against_rules
from bot.core.rules import RuleSet
from bot.redis_clients import async_client
from bot.redis_server import redis_for_command
from bot.render import Renderer
from bot.settings import Settings
from bot.sources import load_alert_routes, load_open311_clients, load_org, load_ruleset


def register(commands: Any) -> None:
    """Add ``org`` and its subcommands."""
    parser = commands.add_parser("org", help="check and show the organisation tree and roster")
    sub = parser.add_subparsers(dest="org_command", metavar="SUBCOMMAND", required=True)
    file_help = "organisation file (default: $LIANHU_ORG_FILE or org/sample_street.yaml)"

    check = sub.add_parser("check", help="validate the tree and roster (exit 1 with every error)")
    check.add_argument("file", nargs="?", type=Path, default=None, help=file_help)
    check.add_argument(
        "--rules",
        type=Path,
        default=None,
        metavar="DIR",
        help="also check the departments the rules name (default: the rules directory, if any)",
    )
    check.add_argument(
        "--alerts", type=Path, default=None, metavar="FILE",
        help="also check the alert mapping (default: $LIANHU_ALERTS_FILE, if set)",
    )  # fmt: skip
    check.add_argument(
        "--open311", type=Path, default=None, metavar="FILE",
        help="also check the Open311 clients file (default: $LIANHU_OPEN311_CLIENTS, if set)",
    )  # fmt: skip
    check.set_defaults(func=cmd_check)

    show = sub.add_parser("show", help="list the nodes and people")
    show.add_argument("file", nargs="?", type=Path, default=None, help=file_help)
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(func=cmd_show)

    invite = sub.add_parser(
        "invite",
        help="make a one-time code: whoever sends /join CODE to the bot privately gets the role",
        description="Make a one-time invite code, as /invite does in chat; the way to enrol the "
        "first administrator. The code is stored in Redis (REDIS_URL, or the embedded server "
        "in LIANHU_DATA_DIR) and is valid for 7 days.",
    )
    invite.add_argument("role", choices=[r.value for r in Role], help="the role it gives")
    invite.add_argument("target", metavar="NODE", help="where, as kind:id (street:S-01, grid:G-03)")
    invite.add_argument("--org", type=Path, default=None, metavar="FILE", help=file_help)
    invite.add_argument(
        "--lang", choices=[lang.value for lang in Lang], default=Lang.ZH_HANS.value,
        help="language of the instructions printed with the code",
    )  # fmt: skip
    invite.set_defaults(func=cmd_invite)

    revoke = sub.add_parser(
        "revoke",
        help="end an enrolment made in chat (/join), at once, in the bot and every worker",
        description="End the chat enrolment of ACCOUNT (telegram:12345), as /revoke does in "
        "chat: its next command is refused. People the org file names are changed in the "
        "file. Uses REDIS_URL, or the embedded server in LIANHU_DATA_DIR.",
    )
    revoke.add_argument("account", metavar="ACCOUNT", help="the account, as platform:id")
    revoke.add_argument("--org", type=Path, default=None, metavar="FILE", help=file_help)
    revoke.set_defaults(func=cmd_revoke)

    audit = sub.add_parser(
        "audit", help="print the history of enrolments and revocations, oldest first"
    )
    audit.add_argument("--json", action="store_true", help="print JSON lines")
    audit.set_defaults(func=cmd_audit)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the organisation file, and its departments against the rules."""
    path: Path = args.file or default_org_file()
    try:
        tree = load_org(path)
    except InvalidOrg as exc:
        return report_invalid(exc, str(path))
    rules_dir: Path | None = args.rules
    if rules_dir is None and default_rules_dir().is_dir():
        rules_dir = default_rules_dir()
    ruleset: RuleSet | None = None
    if rules_dir is not None:
        try:
            ruleset = load_ruleset(rules_dir)
        except InvalidRules as exc:
            return report_invalid(exc, str(rules_dir))
        missing = check_against_rules(tree, ruleset)
        for message in missing:
            print(f"{path}: {message} (rules: {rules_dir})", file=sys.stderr)
        if missing:
            count = len(missing)
            print(f"{path}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
            return 1
    said = [f"{path}: {len(tree.nodes)} nodes, {len(tree.people)} people"]
    intake = _check_intake(args, tree, ruleset)
    if isinstance(intake, int):
        return intake
    for line in [*said, *intake]:
        print(line)
    return 0


def _check_intake(
    args: argparse.Namespace, tree: OrgTree, ruleset: RuleSet | None
) -> list[str] | int:
    """Validate the alert mapping and the Open311 clients file, when given or set.

    Return what each holds, or exit status 1 after printing every problem of each.
    """
    settings = Settings()
    alerts: Path | None = args.alerts or settings.alerts_file
    clients: Path | None = args.open311 or settings.open311_clients
    said: list[str] = []
    failed = False
    if alerts is not None:
        if ruleset is None:
            print(f"{alerts}: checking the alert mapping needs the rules (--rules DIR)",
                  file=sys.stderr)  # fmt: skip
            failed = True
        else:
            try:
                routes = load_alert_routes(alerts, tree, ruleset)
                said.append(f"{alerts}: {len(routes)} alert routes")
            except InvalidAlertRoutes as exc:
                failed = bool(report_invalid(exc, str(alerts))) or failed
    if clients is not None:
        try:
            found = load_open311_clients(clients, tree)
            said.append(f"{clients}: {len(found)} Open311 clients")
        except InvalidClients as exc:
            failed = bool(report_invalid(exc, str(clients))) or failed
    return 1 if failed else said


def cmd_invite(args: argparse.Namespace) -> int:
    """Store a one-time invite code and print it with what to do with it."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return report_settings(exc, "lianhu org invite")
    path: Path = args.org or settings.org_file
    try:
        tree = load_org(path)
    except InvalidOrg as exc:
        return report_invalid(exc, str(path))
    lang, renderer = Lang(args.lang), Renderer()
    invite = invite_for(tree, Role(args.role), args.target)
    if isinstance(invite, AdminRefusal):
        print(renderer.text(invite.reason, invite.params, lang), file=sys.stderr)
        return 1
    with redis_for_command(settings.redis_url, settings.data_dir) as url:
        code = asyncio.run(_store_invite(url, invite))
    print(renderer.text("invite_code_cli", invite_params(tree, invite, code), lang))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """End an account's chat enrolment; exit 1 when it has none or the file names it."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return report_settings(exc, "lianhu org revoke")
    path: Path = args.org or settings.org_file
    try:
        tree = load_org(path)
    except InvalidOrg as exc:
        return report_invalid(exc, str(path))
    if args.account in tree.accounts:
        person = tree.people[tree.accounts[args.account]]
        print(f"{args.account}: named in {path} ({person.id}); change it there", file=sys.stderr)
        return 1
    with redis_for_command(settings.redis_url, settings.data_dir) as url:
        revoked = asyncio.run(_revoke(url, args.account))
    if revoked is None:
        print(f"{args.account}: no enrolment to revoke", file=sys.stderr)
        return 1
    print(f"{revoked.account}: {revoked.role.value} of {revoked.scope} revoked")
    return 0


async def _revoke(url: str, account: str) -> Enrolment | None:
    client = async_client(url)
    try:
        return await BindingStore(client).revoke(account, by="cli")
    finally:
        await client.aclose()


def cmd_audit(args: argparse.Namespace) -> int:
    """Print every enrolment and revocation stored, oldest first."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return report_settings(exc, "lianhu org audit")
    with redis_for_command(settings.redis_url, settings.data_dir) as url:
        entries = asyncio.run(_audit(url))
    if args.json:
        for entry in entries:
            print(json.dumps(entry, ensure_ascii=False))
        return 0
    columns = ("at", "action", "account", "name", "role", "scope", "by")
    rows = [
        (
            dt.datetime.fromtimestamp(float(e.get("at", 0)), dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            *(e.get(c, "") for c in columns[1:]),
        )
        for e in entries
    ]
    print_table("enrolments and revocations (UTC)", columns, rows)
    return 0


async def _audit(url: str) -> list[dict[str, str]]:
    client = async_client(url)
    try:
        return await BindingStore(client).audit()
    finally:
        await client.aclose()


async def _store_invite(url: str, invite: Invite) -> str:
    client = async_client(url)
    try:
        return await BindingStore(client).create_invite(invite, by="cli")
    finally:
        await client.aclose()


def cmd_show(args: argparse.Namespace) -> int:
    """Print the nodes and people, as tables or as JSON."""
    path: Path = args.file or default_org_file()
    try:
        tree = load_org(path)
    except InvalidOrg as exc:
        return report_invalid(exc, str(path))
    if args.json:
        print(json.dumps(tree_json(tree), ensure_ascii=False, indent=2))
    else:
        print_tree(tree)
    return 0


def tree_json(tree: OrgTree) -> dict[str, Any]:
    """Return the tree as plain JSON data."""
    return {
        "nodes": [node_json(node) for node in tree.nodes.values()],
        "people": [person_json(person) for person in tree.people.values()],
    }


def node_json(node: Node) -> dict[str, Any]:
    """Return one node as plain JSON data."""
    return {
        "id": node.id,
        "name": node.name,
        "names": {str(lang): name for lang, name in node.names.items()},
        "kind": str(node.kind),
        "tier": None if node.tier is None else str(node.tier),
        "parent": node.parent,
        "department": node.department,
        "chats": list(node.chats),
        "staff_chat": node.staff_chat,
    }


def person_json(person: Person) -> dict[str, Any]:
    """Return one person as plain JSON data."""
    return {
        "id": person.id,
        "name": person.name,
        "role": str(person.role),
        "scope": person.scope,
        "accounts": list(person.accounts),
        "lang": str(person.lang),
        "global": person.everywhere,
    }


def print_tree(tree: OrgTree) -> None:
    """Print a table of nodes and a table of people."""
    nodes = []
    for node in tree.nodes.values():
        kind = f"department ({node.department})" if node.department else str(node.kind)
        nodes.append(
            (
                node.id,
                node.name,
                kind,
                node.parent or "",
                "\n".join(node.chats),
                node.staff_chat or "",
            )
        )
    print_table("nodes", ("id", "name", "tier/kind", "parent", "chats", "staff chat"), nodes)
    people = [
        (person.id, person.name, str(person.role), person.scope, "\n".join(person.accounts))
        for person in tree.people.values()
    ]
    print_table("people", ("id", "name", "role", "scope", "accounts"), people)
