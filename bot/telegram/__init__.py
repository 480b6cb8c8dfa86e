"""Lianhu on Telegram: durable inbox, rate-limited sender, polling, webhook and runner."""
