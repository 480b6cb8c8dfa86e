"""办结 by button: the presser is asked for the result, and their answer is read here.

A press of 办结 resolves nothing by itself. The presser's next answer in the chat (a reply to
the question, or on platforms without replies their next message) is the result, unless it
is empty or says to cancel; the question lapses after ``ASK_TTL`` seconds.
"""

from __future__ import annotations

from bot.core.commands import Command, Verb, Via
from bot.core.text import normalise

ASK_TTL = 30 * 60  # how long a 办结 question waits for its answer
LATE_TTL = 24 * 3600  # how long an expired question is remembered, to tell a late answer so
CANCEL_WORDS = frozenset({"取消", "取消办结", "算了", "不办结", "cancel", "/cancel", "no"})


def asks_for_result(command: object) -> bool:
    """Return whether ``command`` is a 办结 button press, which asks its presser for the result."""
    return (
        isinstance(command, Command)
        and command.verb is Verb.RESOLVE
        and command.via is Via.BUTTON
        and not command.text.strip()
    )


def read_answer(text: str) -> str | None:
    """Return the result an answer gives, or None when it is empty or cancels."""
    result = text.strip()
    if not result or normalise(result).lower() in CANCEL_WORDS:
        return None
    return result


def result_command(ticket: str, result: str) -> Command:
    """Return the 办结 the answer makes: as if typed, ``/resolve <ticket> <result>``."""
    return Command(Verb.RESOLVE, ticket, result, via=Via.TEXT)
