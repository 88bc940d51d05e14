"""Benchmarks that print figures; not part of the test run and never shipped.

Each module is a script (``python bench/<name>.py``) that is also importable:
it exposes ``main(argv) -> int`` and functions returning its numbers.
"""
