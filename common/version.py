"""The package version (the wire protocol has its own, in protocol.py)."""

__version__ = "0.1.0"
