"""Lianhu on Telegram: durable inbox, rate-limited sender, polling, webhook and runner."""

import os

# ptb 22 reports durations (RetryAfter.retry_after, ...) as int with a deprecation warning on
# every 429, even inside its own constructor, unless the process opts in to timedelta values,
# which the next major version makes the only behaviour. Opt in before ptb is used.
os.environ.setdefault("PTB_TIMEDELTA", "true")
