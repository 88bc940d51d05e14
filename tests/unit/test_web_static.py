"""The page's files: the vendored uPlot is the published one (digests), with its licence; no CDN anywhere."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "common" / "web" / "static"
UPLOT_SHA256 = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


def test_vendored_uplot_matches_the_npm_release_and_ships_its_licence() -> None:
    folder = STATIC / "vendor" / "uplot"
    for name, digest in UPLOT_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    licence = (folder / "LICENSE").read_text()
    assert "MIT" in licence
    assert "Leon Sorokin" in licence


def test_the_page_loads_nothing_from_another_host() -> None:
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".css", ".js") and "vendor" not in path.parts:
            text = path.read_text()
            assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
            assert not re.search(r"https?://", text), f"{path} names another host"
    page = (STATIC / "index.html").read_text()
    for local in ("/static/app.js", "/static/app.css", "/static/vendor/uplot/uPlot.iife.min.js"):
        assert local in page
