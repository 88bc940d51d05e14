"""``gsmon watch`` on a terminal: a full-screen application that puts problems first.

::

    hub --NODEs--> Subscriber ----> HubFeed ---------> ViewModel ------------> Textual widgets
                   (client.py)      (feed.py: its own   (model.py, pure:        (app.py: TreeView draws
                                    thread; latest      tree -> rows, problems  only the lines on screen;
                                    node per path)      first, collapse,        title, status bar, detail
                                         |              filter, cursor;         pane, prompts, lists)
                                         |              takes `now`)                  |
                                         +---- take() every 0.25 s (coalesced) ------+
                                                        |
                                          layout.py (pure: columns, cells, symbols,
                                          status and detail text; units.py formats values)
                                                        |
                                          adapter.py (the one place the alarm fields of
                                          a node are read: attention, alarm, since, ...)
                                                        |
                                          commands.py (ack, unack, shelve, alarms, journal:
                                          the Commands interface; HubCommands asks the hub
                                          through alarm_commands.OperatorClient)
                                                        |
                                          collector.py (pure: when the garbage collector's
                                          full passes run -- while the keys are quiet)

Why Textual: it is the well-kept Python terminal-UI framework (built on Rich,
which gsmon's cells already measure text with), it redraws in place on the
alternate screen (no scrollback), follows resizes, speaks mouse and NO_COLOR,
offers a line API for widgets that draw only the visible lines of a large
list (10,000 rows cost what 50 do), and comes with a headless test pilot, so
the application is driven in tests without a terminal. curses would have
meant writing all of that; urwid and prompt_toolkit have no comparable
testing story.

The plain frames (``gsmon watch --plain``, and whenever stdout is not a
terminal) are drawn by :mod:`gsmon.common.views`, with the same unit formatters.
"""

from __future__ import annotations

from collections.abc import Callable

from gsmon.common.failover import HubChoice
from gsmon.common.keys import ClientKeys
from gsmon.common.watch.commands import Commands, HubCommands

__all__ = ["run_app"]


def run_app(
    hub: str | HubChoice,
    prefix: str,
    *,
    timeout_s: float,
    curve: ClientKeys | None,
    colour: bool,
    duration_s: float | None = None,
    check: Callable[[], None] | None = None,
    commands: Commands | None = None,
) -> int:
    """Run the application on this terminal until ``q`` (status 0), Ctrl+C, SIGTERM or ``duration_s``.

    ``check`` is called on every redraw and ends the application by raising
    (re-raised here once the terminal is restored: ``gsmon demo``'s children).
    """
    # Textual is imported here, not at the top: `gsmon get`, the plain frames and
    # `gsmon --version` never pay for it.
    from gsmon.common.watch.app import WatchApp
    from gsmon.common.watch.feed import HubFeed

    feed = HubFeed(hub, prefix, timeout_s=timeout_s, curve=curve).start()
    if isinstance(commands, HubCommands):
        commands.start()  # learns the role in the background

    def check_all() -> None:
        if feed.failure is not None:
            raise feed.failure
        if check is not None:
            check()

    app = WatchApp(
        feed.take,
        hub=feed.choice.current,
        prefix=prefix,
        commands=commands,
        colour=colour,
        duration_s=duration_s,
        check=check_all,
        freeze_gc=True,
    )
    try:
        status = app.run()
    finally:
        feed.stop()
        if isinstance(commands, HubCommands):
            commands.stop()
    if app.failure is not None:
        raise app.failure
    return 0 if status is None else status
