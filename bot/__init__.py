"""Lianhu: a chat bot for tiered community group chats."""

__version__ = "0.1.0"
