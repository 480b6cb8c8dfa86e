"""Every command by every person of the sample roster: only the allowed ones change anything."""

from __future__ import annotations

import pytest

from bot.core.classify import classify
from bot.core.commands import Command, Verb
from bot.core.deadlines import Policy
from bot.core.models import Actor, IncomingMessage, Lang
from bot.core.org import OrgTree, Person, Role
from bot.core.ticket import Ticket
from bot.core.workflow import Context, Decision, Refusal, apply, open_ticket
from bot.sources import load_org, load_ruleset
from tests.conftest import ROOT, RULES_DIR

CTX = Context(load_ruleset(RULES_DIR), load_org(ROOT / "org" / "sample_street.yaml"), Policy())
TREE: OrgTree = CTX.tree
NOW = 1_800_000_000.0

# The oracle, written out by hand: a noise ticket from household group H-01 is handled
# at grid G-01, whose ancestors are village V-01 and street S-01.
HANDLING_SCOPES = {"G-01", "V-01", "S-01"}
NON_HANDLERS = {Role.RESIDENT, Role.HOUSEHOLD_LEADER}
REPORTER = next(p for p in TREE.people.values() if p.role is Role.RESIDENT and p.scope == "H-01")
ASSIGNEE = next(p for p in TREE.people.values() if p.role is Role.GRID_WORKER and p.scope == "G-01")


def actor(person: Person) -> Actor:
    return Actor(person.accounts[0], person.name, person.id, Lang(person.lang))


def noise_ticket() -> Ticket:
    message = IncomingMessage(
        TREE.nodes["H-01"].chats[0],
        "m1",
        actor(REPORTER),
        "楼下KTV每晚唱到凌晨三点，吵得睡不着",
        NOW,
    )
    match = classify(message.text, CTX.ruleset)
    assert match is not None and match.category == "noise"
    ticket = open_ticket(CTX, "7", message, match, TREE.nodes["H-01"], NOW).ticket
    assert ticket.node == "G-01"
    return ticket


def resolved_ticket() -> Ticket:
    worker = actor(ASSIGNEE)
    decision = apply(
        CTX, noise_ticket(), Command(Verb.RESOLVE, "7", "已劝停"), worker, ASSIGNEE, "x", NOW
    )
    assert isinstance(decision, Decision)
    return decision.ticket


COMMANDS = {
    Verb.ACK: Command(Verb.ACK, "7"),
    Verb.NOTE: Command(Verb.NOTE, "7", "明晚再去看看"),
    Verb.RESOLVE: Command(Verb.RESOLVE, "7", "已劝停"),
    Verb.ESCALATE: Command(Verb.ESCALATE, "7", "屡劝不改"),
    Verb.ASSIGN: Command(Verb.ASSIGN, "7", target=ASSIGNEE.id),
    Verb.DISMISS: Command(Verb.DISMISS, "7", "重复投诉"),
    Verb.STATUS: Command(Verb.STATUS, "7"),
    Verb.CONFIRM: Command(Verb.CONFIRM, "7"),
    Verb.REOPEN: Command(Verb.REOPEN, "7", "今晚又吵"),
    Verb.RATE: Command(Verb.RATE, "7", rating=5),
}
HANDLER_VERBS = {Verb.ACK, Verb.RESOLVE, Verb.ESCALATE, Verb.ASSIGN, Verb.DISMISS}
RESIDENT_VERBS = {Verb.CONFIRM, Verb.REOPEN, Verb.RATE}


def allowed(person: Person, verb: Verb) -> bool:
    """Return what the rules of DESIGN.md allow, from the hand-written oracle above."""
    admin = person.role is Role.ADMIN
    handler = admin or (person.role not in NON_HANDLERS and person.scope in HANDLING_SCOPES)
    reporter = person.id == REPORTER.id
    # Noise asks enforcement to report in: its staff see the ticket and add notes.
    assisting = person.scope == "D-enforcement"
    if verb in HANDLER_VERBS:
        return handler
    if verb is Verb.NOTE:
        return handler or reporter or assisting
    if verb in RESIDENT_VERBS:
        return reporter or admin
    # STATUS: the handlers, the reporter, the departments asked to report in, and staff of
    # the group where it was reported (the household leader relays for neighbours).
    return (
        handler
        or reporter
        or assisting
        or (person.role is not Role.RESIDENT and person.scope == "H-01")
    )


CASES = [(p, verb) for p in sorted(TREE.people.values(), key=lambda p: p.id) for verb in COMMANDS]


@pytest.mark.parametrize(("person", "verb"), CASES, ids=[f"{p.id}-{v.value}" for p, v in CASES])
def test_permission_matrix(person: Person, verb: Verb) -> None:
    ticket = resolved_ticket() if verb in RESIDENT_VERBS else noise_ticket()
    outcome = apply(CTX, ticket, COMMANDS[verb], actor(person), person, "chat", NOW + 60)
    if allowed(person, verb):
        assert isinstance(outcome, Decision), outcome
        if verb is not Verb.STATUS:
            assert outcome.events and outcome.ticket.seq > ticket.seq
    elif not allowed(person, Verb.STATUS):  # may not see it: not even that it exists
        assert outcome == Refusal("no_such_ticket", {"id": "7"})
    else:
        assert isinstance(outcome, Refusal)
        assert outcome.reason in {"not_handler", "not_in_scope", "not_reporter"}


def test_the_matrix_covers_every_role_in_and_out_of_scope() -> None:
    roles_in = {p.role for p in TREE.people.values() if allowed(p, Verb.ACK)}
    roles_out = {p.role for p in TREE.people.values() if not allowed(p, Verb.ACK)}
    assert {Role.GRID_WORKER, Role.VILLAGE_CADRE, Role.STREET_STAFF, Role.ADMIN} <= roles_in
    assert {
        Role.GRID_WORKER,
        Role.RESIDENT,
        Role.HOUSEHOLD_LEADER,
        Role.DEPARTMENT_STAFF,
    } <= roles_out
    assert len(CASES) == len(TREE.people) * len(COMMANDS)


def test_outside_scope_a_ticket_is_only_not_found_or_not_yours() -> None:
    """Refusals name no node to whoever may not see the ticket, so ids cannot be probed."""
    ticket = noise_ticket()
    outsider = next(
        p for p in TREE.people.values() if p.role is Role.GRID_WORKER and p.scope == "G-03"
    )
    for verb in COMMANDS:
        outcome = apply(CTX, ticket, COMMANDS[verb], actor(outsider), outsider, "chat", NOW)
        assert outcome == Refusal("no_such_ticket", {"id": "7"}), verb
