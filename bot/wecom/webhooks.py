"""The group robot webhook keys: one secret per WeCom group, in a file beside the org file.

A WeCom group is bound to an org node like any chat (``wecom:<chatid>`` in the
node's ``chats`` or ``staff_chat``, or ``/bind`` in the group). Its key is a
secret (anyone holding it can post to the group), so it does not go in the
org file, which is shown and committed, but in its own file
(``LIANHU_WECOM_WEBHOOKS``)::

    webhooks:
      "wecom:wrkSFfCgAALFgnrSsWU38puiv4yvExuw": "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"

``load_webhooks`` rejects unknown keys, chats of another platform and keys of
the wrong shape; ``unmatched`` names the chats that have a key but no node
and the nodes' WeCom groups that have no key (cards to them cannot be pushed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from bot.core.org import OrgTree
from bot.wecom.adapter import PLATFORM

WebhookChat = Annotated[str, Field(pattern=rf"^{PLATFORM}:[A-Za-z0-9_@.-]{{1,128}}$")]


class InvalidWebhooks(Exception):
    """The webhook file cannot be used; the message names the file and the problem."""


class _WebhookFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: dict[WebhookChat, SecretStr] = {}


def _key_shape(key: str) -> bool:
    return 8 <= len(key) <= 128 and all(c.isascii() and (c.isalnum() or c == "-") for c in key)


def load_webhooks(path: Path) -> dict[str, SecretStr]:
    """Return the webhook key of each WeCom group chat in ``path``; raise InvalidWebhooks."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _WebhookFile.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidWebhooks(f"{path}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidWebhooks(f"{path}: {where}: {first['msg']}") from None
    for chat, key in parsed.webhooks.items():
        if not _key_shape(key.get_secret_value()):  # the key itself is never shown
            raise InvalidWebhooks(f"{path}: webhooks.{chat}: not a webhook key (8-128 of A-Z0-9-)")
    return dict(parsed.webhooks)


def unmatched(webhooks: Mapping[str, SecretStr], tree: OrgTree) -> list[str]:
    """Return what does not line up between the keys and the tree, one line each."""
    problems = [f"{chat}: a webhook key but no node" for chat in webhooks if chat not in tree.chats]
    for node in tree.nodes.values():
        for chat in (*node.chats, *([node.staff_chat] if node.staff_chat else [])):
            if chat.startswith(f"{PLATFORM}:") and chat not in webhooks:
                problems.append(f"{chat} ({node.id}): no webhook key; cards cannot be pushed")
    return problems
