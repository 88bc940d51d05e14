"""gsmon notify: tells people when something goes wrong, and when it is fixed.

Pipeline of one notifier process::

    hub query socket --COMMAND "journal" {after_id}--> entries (the source of truth, by cursor)
        --> NotifyCore (pure, takes now): routes, groups, repeats, grace, rate limit, retries
        --> outbox --> deliver (apprise URLs: email, JSON webhooks, chat...; or a local command)
    NotifyStore (SQLite, WAL): cursor + core state in one transaction; the sent-log

* :mod:`~gsmon.common.notify.core` -- what to tell whom and when (no I/O)
* :mod:`~gsmon.common.notify.cursors` -- a journal cursor per hub of a pair, and what to skip after a move
* :mod:`~gsmon.common.notify.config` -- notify.toml and the flags
* :mod:`~gsmon.common.notify.store` -- the state file and the sent-log
* :mod:`~gsmon.common.notify.deliver` -- apprise and local commands
* :mod:`~gsmon.common.notify.main` -- the loop and ``gsmon notify``
* :mod:`~gsmon.common.notify.pair` -- a hub pair's notifier: send as the sender, skip what either hub marked
"""
