"""Every Redis key Lianhu uses, as templates; no key is spelled anywhere else."""

from __future__ import annotations

import zlib

PREFIX = "lianhu"

TICKET_SEQ = f"{PREFIX}:seq:ticket"  # INCR: the next short ticket id
# Indexes of every ticket are split in buckets of BUCKET consecutive ids (bot.storage.indexes):
# a ZSET of at most 128 entries (zset-max-listpack-entries) is one listpack, ~10-20 B an entry,
# where one big ZSET is a skiplist and a hash table, ~100 B an entry.
BUCKET = 128
TICKETS = f"{PREFIX}:tickets"  # ZSET id -> created_at: every ticket, as written before buckets
TICKET_BUCKETS = f"{PREFIX}:tickets:buckets"  # ZSET bucket -> newest created_at added to it
# ZSET "id:stage:kind" -> due, for the sweeper: deadlines of questions and notices (ids not
# numbers), and of tickets as written before buckets
DEADLINES = f"{PREFIX}:deadlines"
DEADLINE_BUCKETS = f"{PREFIX}:deadlines:buckets"  # ZSET bucket -> earliest due in it
# Tickets by reporter: this many ZSETs, an account's entries in the one its name hashes to.
# (A ZSET per account costs ~100 B of key and header for one or two entries.) A bucket stays a
# listpack while it holds at most 128 entries: 4,096 of them hold ~500,000 (reporter, ticket)
# pairs so (1,024 held 130,000: at 150,000 tickets they were skiplists, 128 B a ticket).
REPORTER_BUCKETS = 4096
# ZSET id -> closed_at: closed and dismissed tickets still in Redis (archived, then erased)
CLOSED = f"{PREFIX}:closed"
# BITMAP: bit N set when ticket N left Redis for the archive files (bot.archive)
ARCHIVED = f"{PREFIX}:archived"
ARCHIVE_LEASE = f"{PREFIX}:archive:lease"  # STRING: the one sweeper archiving now (expires)
OUTBOX = f"{PREFIX}:outbox:{{platform}}"  # STREAM of rendered replies, one per platform
OUTBOX_GROUP = "senders"
INBOX = f"{PREFIX}:inbox:{{platform}}"  # STREAM of raw platform updates, one per platform
PROMPT_SEQ = f"{PREFIX}:seq:prompt"  # INCR: the next question id (p1, p2, ...)
LEARNED_SEQ = f"{PREFIX}:seq:learned"  # INCR: the next labelled example id
LEARNED = f"{PREFIX}:learned"  # ZSET example id -> when: examples awaiting review
CLASSIFIED = f"{PREFIX}:classified"  # STREAM: masked text and verdict of classified messages


def ticket(ticket_id: str) -> str:
    """Return the key of a ticket: a HASH of its events by number, maybe a snapshot "s".

    (Written before: a STRING snapshot beside ``events(ticket_id)``; see bot.storage.redis.)
    """
    return f"{PREFIX}:ticket:{ticket_id}"


def events(ticket_id: str) -> str:
    """Return the key of a ticket's history in the old layout (LIST of JSON events)."""
    return f"{PREFIX}:ticket:{ticket_id}:events"


def processed(message_key: str) -> str:
    """Return the marker of an incoming message already handled (value: ticket id)."""
    return f"{PREFIX}:msg:{message_key}"


def active_at(node: str) -> str:
    """Return the ZSET of tickets handlers still owe work on, at one node, as written before
    ``queued``."""
    return f"{PREFIX}:active:{node}"


def by_reporter(account: str) -> str:
    """Return the ZSET of tickets an account reported or joined, as written before
    ``reporters``."""
    return f"{PREFIX}:reporter:{account}"


def ticket_bucket(ticket_id: str) -> int | None:
    """Return the bucket of a ticket id's index entries; None for an id that is not a number
    (its entries stay in the key written before buckets)."""
    if not (ticket_id.isascii() and ticket_id.isdigit()):
        return None
    return int(ticket_id) // BUCKET


def tickets_in(bucket: int) -> str:
    """Return the ZSET (id -> created_at) of the tickets of one bucket of ids."""
    return f"{TICKETS}:{bucket}"


def deadlines_in(bucket: int) -> str:
    """Return the ZSET ("id:stage:kind" -> due) of the deadlines of one bucket of ticket ids."""
    return f"{DEADLINES}:{bucket}"


def reporters(account: str) -> str:
    """Return the ZSET holding an account's ``pair_member`` entries (among others')."""
    return f"{PREFIX}:reporters:{zlib.crc32(account.encode()) % REPORTER_BUCKETS}"


def pair_member(owner: str, ticket_id: str) -> str:
    """Return the member naming a ticket of an owner (an account in ``reporters``, a node in
    ``queued``): the owner, NUL, the id's length as one character, the id.

    Every such member has the score 0, so an owner's members are a lexical range (ZRANGEBYLEX
    from "owner NUL"), in the order of their ids (the length first: "9" before "10").
    """
    return f"{owner}\0{chr(48 + len(ticket_id))}{ticket_id}"


def pair_range(owner: str) -> tuple[str, str]:
    """Return the ZRANGEBYLEX bounds of an owner's ``pair_member`` members."""
    return f"[{owner}\0", f"({owner}\x01"


def parse_pair_member(member: str) -> tuple[str, str]:
    """Return (owner, ticket id) of a ``pair_member`` member."""
    owner, _, rest = member.partition("\0")
    return owner, rest[1:]


def queued(bucket: int) -> str:
    """Return the ZSET of ``pair_member`` (node, ticket) entries of the tickets of one bucket
    of ids that handlers still owe work on, at any node."""
    return f"{PREFIX}:queued:{bucket}"


def queues(node: str) -> str:
    """Return the ZSET of the buckets (score: the bucket) holding a node's ``queued`` entries."""
    return f"{PREFIX}:queues:{node}"


def by_assignee(person: str) -> str:
    """Return the ZSET of tickets assigned to a person."""
    return f"{PREFIX}:assignee:{person}"


def recent(village: str) -> str:
    """Return the ZSET (id -> opened at) of a village's public tickets a new report may join."""
    return f"{PREFIX}:recent:{village}"


def recent_version(village: str) -> str:
    """Return the counter of tickets entered in ``recent(village)``: a new ticket's guard."""
    return f"{PREFIX}:recent:{village}:version"


# A HASH holds the pointers of this many consecutive message ids of a chat: it stays a small
# listpack, and expires once the chat has moved past its ids (bot.storage.decks).
POINTERS_PER_HASH = 100


def card(chat: str, message_id: str) -> str:
    """Return the pointer from a sent card or notice to its ticket, for a message id that is
    not a number (and as written before ``card_pointers``)."""
    return f"{PREFIX}:card:{chat}:{message_id}"


def card_pointers(chat: str, message_id: str) -> str | None:
    """Return the HASH (message id -> ticket) holding the pointer of a sent message.

    None for a message id that is not a number: its pointer is ``card``.
    """
    if not (message_id.isascii() and message_id.isdigit()):
        return None
    return f"{PREFIX}:cardsin:{chat}:{int(message_id) // POINTERS_PER_HASH}"


# HASH "n:<node>" / "c:<category>" -> JSON names: the names every deck's cards share, stored
# once (bot.storage.card_names); a field is written once and never changed, nor expires.
CARD_NAMES = f"{PREFIX}:names"


def deck(owner: str) -> str:
    """Return the HASH of a ticket's (or question's) delivered cards on every platform, and
    the view they are brought to (bot.storage.decks)."""
    return f"{PREFIX}:deck:{owner}"


def ticket_cards(platform: str, ticket_id: str) -> str:
    """Return the HASH of a ticket's sent cards on a platform ("chat message_id" -> record),
    as written before ``deck``."""
    return f"{PREFIX}:cards:{platform}:{ticket_id}"


def card_view(platform: str, ticket_id: str) -> str:
    """Return what a ticket's cards on a platform should show now, as written before ``deck``."""
    return f"{PREFIX}:cardview:{platform}:{ticket_id}"


def sent(outbox_key: str) -> str:
    """Return the marker of an outbox entry already delivered."""
    return f"{PREFIX}:sent:{outbox_key}"


def pace(account: str) -> str:
    """Return the counter of replies to one person's messages in the current period."""
    return f"{PREFIX}:pace:{account}"


def same_reply(chat: str, digest: str) -> str:
    """Return the marker of an answer (by content digest) just queued for a chat."""
    return f"{PREFIX}:same:{chat}:{digest}"


def prompt(prompt_id: str) -> str:
    """Return the key of a question the bot asked (JSON snapshot, see bot.core.prompts)."""
    return f"{PREFIX}:prompt:{prompt_id}"


def prompt_events(prompt_id: str) -> str:
    """Return the append-only history of a question (LIST of JSON entries)."""
    return f"{PREFIX}:prompt:{prompt_id}:events"


def prompt_of(message_key: str) -> str:
    """Return the pointer from a message to the question asked about it (one per message)."""
    return f"{PREFIX}:prompt:msg:{message_key}"


def said(message_key: str) -> str:
    """Return a message kept a few days so that a leader can open a ticket from it (JSON)."""
    return f"{PREFIX}:said:{message_key}"


def learned(example_id: str) -> str:
    """Return a labelled example awaiting an administrator's review (JSON)."""
    return f"{PREFIX}:learned:{example_id}"


def learned_from(source: str, message_key: str) -> str:
    """Return the marker of an example already taken from one action (one example per action)."""
    return f"{PREFIX}:learned:from:{source}:{message_key}"


def outbox(platform: str) -> str:
    """Return the outbox stream of a platform."""
    return OUTBOX.format(platform=platform)


def deadline_member(ticket_id: str, stage: int, kind: str) -> str:
    """Return the member of DEADLINES for one deadline."""
    return f"{ticket_id}:{stage}:{kind}"


def parse_deadline_member(member: str) -> tuple[str, int, str]:
    """Return (ticket id, stage, kind) of a DEADLINES member."""
    ticket_id, stage, kind = member.rsplit(":", 2)
    return ticket_id, int(stage), kind


# -- chat platforms: the durable inbox, bindings and enrolments made in chat ----------------

INBOX_GROUP = "receivers"
BINDINGS = f"{PREFIX}:bindings"  # HASH chat -> JSON binding made with /bind
ENROLMENTS = f"{PREFIX}:enrolments"  # HASH account -> JSON enrolment made with /join
# PUBSUB channel: the id of every ticket a commit changed ("ticket N changed"), for live pages.
TICKET_CHANGES = f"{PREFIX}:live:tickets"
REVOCATIONS = f"{PREFIX}:revocations"  # HASH account -> JSON: when and by whom last revoked
ORG_VERSION = f"{PREFIX}:org:version"  # INCR on every change of BINDINGS, ENROLMENTS, REVOCATIONS
ORG_AUDIT = f"{PREFIX}:org:audit"  # STREAM, append-only: every enrolment and revocation


def inbox(platform: str) -> str:
    """Return the inbox stream of a platform's raw updates."""
    return INBOX.format(platform=platform)


def inbox_dead(platform: str) -> str:
    """Return the LIST of a platform's dead-lettered raw updates (kept for an operator)."""
    return f"{inbox(platform)}:dead"


def inbox_dead_at(platform: str) -> str:
    """Return the ZSET raw update -> when it was dead-lettered: retention erases old ones."""
    return f"{inbox_dead(platform)}:at"


def inbox_alive(platform: str, consumer: str) -> str:
    """Return the STRING a running receiver renews while it lives (it expires when it dies)."""
    return f"{inbox(platform)}:alive:{consumer}"


def update_seen(platform: str, update_id: int | str) -> str:
    """Return the marker of an update already written to the inbox."""
    return f"{PREFIX}:update:{platform}:{update_id}"


def invite(code: str) -> str:
    """Return the key of a one-time invite code (JSON role and scope)."""
    return f"{PREFIX}:invite:{code}"


def join_failures(account: str) -> str:
    """Return the counter of an account's failed /join attempts in the current window."""
    return f"{PREFIX}:join:failures:{account}"


def sender_lease(platform: str) -> str:
    """Return the lease that makes one process the only writer of a platform."""
    return f"{PREFIX}:sender:{platform}:lease"


# -- WeCom: replay protection, reply routes ----------------------------------------------------


def wecom_nonce(nonce: str) -> str:
    """Return the marker of a callback nonce already accepted (kept for the replay window)."""
    return f"{PREFIX}:wecom:nonce:{nonce}"


def wecom_response_url(chat: str, msgid: str) -> str:
    """Return the one-use response_url of a callback (WeCom honours it for an hour)."""
    return f"{PREFIX}:wecom:response:{chat}:{msgid}"


def wecom_latest(chat: str) -> str:
    """Return the id of the latest callback from a chat (whose response_url may still be unused)."""
    return f"{PREFIX}:wecom:latest:{chat}"


def wecom_passive(chat: str, ref: str) -> str:
    """Return the open passive reply of a callback still held by a callback server."""
    return f"{PREFIX}:wecom:passive:{chat}:{ref}"


def wecom_passive_answer(chat: str, ref: str) -> str:
    """Return the list a sender pushes a held callback's passive reply onto."""
    return f"{PREFIX}:wecom:passive-answer:{chat}:{ref}"


def wecom_webhook_window(robot: str) -> str:
    """Return the ZSET of recent pushes through one group robot webhook (its rate limit)."""
    return f"{PREFIX}:wecom:webhook:{robot}"


# -- notices of known incidents (bot.core.notices) ---------------------------------------------

NOTICE_SEQ = f"{PREFIX}:seq:notice"  # INCR: the next notice id (n1, n2, ...)
NOTICES = f"{PREFIX}:notices"  # ZSET id -> ends: notices not ended yet (ended ones are removed)


def notice(notice_id: str) -> str:
    """Return the key of a notice's latest snapshot (JSON)."""
    return f"{PREFIX}:notice:{notice_id}"


def notice_events(notice_id: str) -> str:
    """Return a notice's append-only history (LIST of JSON entries)."""
    return f"{PREFIX}:notice:{notice_id}:events"


# -- other ways in: alert webhooks, Open311 ---------------------------------------------------


def alert_ticket(source: str, incident: str) -> str:
    """Return the ticket an alert's incident opened (value: ticket id; kept for good)."""
    return f"{PREFIX}:alert:{source}:{incident}"


# -- the web console: one-time sign-in links and sessions ---------------------------------------

WEB_SECRET = f"{PREFIX}:web:secret"  # the key that signs session cookies when none is configured


def web_login(digest: str) -> str:
    """Return a one-time sign-in link's grant, by the SHA-256 of its token (JSON, expires)."""
    return f"{PREFIX}:web:login:{digest}"


def web_session(digest: str) -> str:
    """Return a web console session, by the SHA-256 of its id (JSON, expires)."""
    return f"{PREFIX}:web:session:{digest}"


def web_sessions_of(account: str) -> str:
    """Return the SET of session digests opened by an account (to end them all at once)."""
    return f"{PREFIX}:web:sessions:{account}"


# -- 办结 by button: the result the presser is asked for -------------------------------------------


def resolving(chat: str, account: str) -> str:
    """Return the ticket whose 办结 ``account`` pressed in ``chat``, owing its result (expires)."""
    return f"{PREFIX}:resolving:{chat}:{account}"


def resolving_asked(chat: str, account: str) -> str:
    """Return the ticket id of a result question that has expired (to tell a late answer so)."""
    return f"{PREFIX}:resolving:asked:{chat}:{account}"
