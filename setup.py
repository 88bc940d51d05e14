"""Package discovery for gsmon's folder layout (the rest of the metadata is in pyproject.toml).

The sources live in three top-level folders that install as one import
package: ``agent/`` -> ``gsmon.agent``, ``hub/`` -> ``gsmon.hub``,
``common/`` -> ``gsmon.common`` (``gsmon`` itself is a namespace package, so
there is no ``gsmon/__init__.py`` to keep in sync). ``pyproject.toml`` alone
cannot say that: ``[tool.setuptools.packages.find]`` names what it finds
relative to its ``where`` folder (``agent.probes``, never
``gsmon.agent.probes``), so it would either miss the ``gsmon.`` prefix or
need every subpackage listed by hand -- which is how ``gsmon.agent.probes``
once went missing from the wheel. Here setuptools' own ``find_packages``
finds every package below the three folders, whatever is added later, and
the one mapping ``gsmon -> .`` places them. ``tests/``, ``deploy/`` and
``bench/`` are not searched, so they never ship.
"""

from __future__ import annotations

from setuptools import find_packages, setup

SOURCE_FOLDERS = ("agent", "hub", "common")
# The web page's files (no build step: shipped as they are, vendored libraries with their licences).
WEB_STATIC = ["static/*.html", "static/*.js", "static/*.css", "static/*.svg", "static/vendor/*/*"]

packages = [
    f"gsmon.{package}"
    for folder in SOURCE_FOLDERS
    for package in find_packages(where=".", include=[folder, f"{folder}.*"])
]

setup(
    packages=packages,
    package_dir={"gsmon": "."},
    # py.typed marks every package as typed (PEP 561); the example
    # configurations are printed by `gsmon hub|agent --print-example-config`;
    # the web page (HTML, JS, CSS and the vendored uPlot with its licence) is
    # served by `gsmon web` from the installed package.
    package_data={
        **{package: ["py.typed", "*.toml"] for package in packages},
        "gsmon.common.web": ["py.typed", "*.toml", *WEB_STATIC],
    },
)
