"""gsmon common: what the agent, the hub and the subscribers all need.

* :mod:`~gsmon.common.alerts` -- the alert ladder (NoAlert ... STALE ... Critical)
* :mod:`~gsmon.common.names` -- name and path rules
* :mod:`~gsmon.common.tree` -- a tree with incremental worst-child rollup
* :mod:`~gsmon.common.render` -- the tree table printed by ``print(mon)`` and ``gsmon get``
* :mod:`~gsmon.common.cli` -- the ``gsmon`` command and its subcommands
"""

from gsmon.common.version import __version__

__all__ = ["__version__"]
