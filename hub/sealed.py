"""Sealed routed commands: what only the site hub a command is for can read (protocol "Routed commands").

::

    central hub: Router.route --> RouteSealer.seal(site's key, packed map) --> 0xC1 + nonce + box --> route topic
    site hub:    XPUB reads 0x01 + route topic --> RouteOpener.open --> packed map --> parse_route

Why: a routed command travels as a subscription on the central hub's agents
socket, and a SUB socket sends every subscription to every publisher connected
to it. Without sealing, every agent (and every other site hub) connected to the
central hub reads every routed command: the ids, paths, comments and user names
of other sites' acknowledgements. With keys, the central hub therefore seals
each routed command to the one site it is for, using the keys both ends already
hold: the central hub's own secret key (its server key) and the public key the
site's messages came with, opened by the site with its agent secret key and the
central hub's public key (``upstream_key``/``upstream_hub_key``). Without keys
nothing is private on the link anyway, and routes go in the clear.

The box is NaCl's ``crypto_box`` (Curve25519, XSalsa20, Poly1305; the same
Curve25519 keys as CURVE, Z85-decoded) through PyNaCl, the maintained binding
of libsodium: any libsodium (or TweetNaCl) can open it, which a client in
another language needs. It also authenticates: only the central hub could have
sealed what opens, and a box altered on the way does not open.
"""

from __future__ import annotations

from typing import Final

import nacl.exceptions
import nacl.public
import nacl.utils
from zmq.utils import z85

from gsmon.common import protocol as proto

__all__ = ["NONCE_BYTES", "RouteOpener", "RouteSealer"]

NONCE_BYTES: Final = nacl.public.Box.NONCE_SIZE  # 24, random per box


def _private(secret_z85: bytes) -> nacl.public.PrivateKey:
    return nacl.public.PrivateKey(z85.decode(secret_z85))


def _public(public_z85: bytes) -> nacl.public.PublicKey:
    return nacl.public.PublicKey(z85.decode(public_z85))


class RouteSealer:
    """The central hub's side: seals a packed routed command to the site's public key."""

    def __init__(self, hub_secret_z85: bytes) -> None:
        self._secret = _private(hub_secret_z85)
        self._boxes: dict[bytes, nacl.public.Box] = {}  # site public key -> its box (the key agreement once)

    def seal(self, site_public_z85: str | bytes, packed: bytes) -> bytes:
        """``SEALED_ROUTE_MARK`` + nonce + box: what follows the route topic's NUL."""
        key = site_public_z85.encode("ascii") if isinstance(site_public_z85, str) else site_public_z85
        box = self._boxes.get(key)
        if box is None:
            if len(self._boxes) > 4096:  # keys rotate; a long-running hub must not keep every old one
                self._boxes.clear()
            box = self._boxes[key] = nacl.public.Box(self._secret, _public(key))
        nonce = nacl.utils.random(NONCE_BYTES)
        return proto.SEALED_ROUTE_MARK + bytes(box.encrypt(packed, nonce))


class RouteOpener:
    """The site hub's side: opens what the central hub sealed to it (None: not for it, or altered)."""

    def __init__(self, own_secret_z85: bytes, hub_public_z85: bytes) -> None:
        self._box = nacl.public.Box(_private(own_secret_z85), _public(hub_public_z85))
        self.failed = 0  # sealed routes that did not open (another site's, or altered): counted, dropped

    def open(self, sealed: bytes) -> bytes | None:
        """The packed map inside ``sealed`` (nonce + box, the mark already taken off)."""
        try:
            return self._box.decrypt(sealed)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            self.failed += 1
            return None
