"""Live datasets: the change feed, cross-process wake-ups and subscriptions.

``feed.py`` reads new rows of the registry's ``changes`` table when woken
(watchfiles on SQLite, LISTEN/NOTIFY on PostgreSQL); ``subscribe.py`` keeps
the current value of subscribed datasets up to date from deltas and calls
back, coalescing when the callback is slower than the writer.
"""

from __future__ import annotations

from .feed import Change, Feed
from .subscribe import Subscription, Update

__all__ = ["Change", "Feed", "Subscription", "Update"]
