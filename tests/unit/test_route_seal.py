"""Sealed routed commands (hub/sealed.py, protocol "Sealed routes"): only the named site can read one."""

from __future__ import annotations

from functools import partial

import nacl.public
import zmq
from zmq.utils import z85

from gsmon.common import protocol as proto
from gsmon.hub.sealed import NONCE_BYTES, RouteOpener, RouteSealer

COMMAND = {
    "route_id": 7,
    "command": "ack",
    "args": {"ids": [3], "comment": "LNA swapped by Jo"},
    "user": "jo",
    "by": "ops",
    "hub": "central",
    "role": "operator",
    "deadline": 1_700_000_005.0,
}


def _pairs() -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    return zmq.curve_keypair(), zmq.curve_keypair()  # (public, secret) each: the central hub's, the site's


def _frame(topic: bytes) -> bytes:
    return b"\x01" + topic  # as the site's XPUB reads a subscription


def test_a_sealed_route_opens_at_its_site_and_says_nothing_to_anyone_else() -> None:
    (hub_public, hub_secret), (site_public, site_secret) = _pairs()
    topic = proto.route_topic("GS1", COMMAND, partial(RouteSealer(hub_secret).seal, site_public))
    assert topic.startswith(proto.ROUTE_TOPIC_PREFIX + b"GS1\x00" + proto.SEALED_ROUTE_MARK)
    assert b"LNA swapped by Jo" not in topic  # (short strings could occur in random bytes by chance)
    site = RouteOpener(site_secret, hub_public)
    assert proto.parse_route("GS1", _frame(topic), site.open) == COMMAND
    # Another agent of the central hub, with its own key, cannot open it.
    _, other_secret = zmq.curve_keypair()
    other = RouteOpener(other_secret, hub_public)
    assert proto.parse_route("GS1", _frame(topic), other.open) is None
    assert other.failed == 1


def test_the_box_is_libsodiums_crypto_box_nonce_first_as_the_spec_says() -> None:
    (hub_public, hub_secret), (site_public, site_secret) = _pairs()
    packed = b"\x81\xa1a\x01"
    sealed = RouteSealer(hub_secret).seal(site_public, packed)
    assert sealed[:1] == proto.SEALED_ROUTE_MARK
    assert len(sealed) == len(packed) + proto.SEALED_ROUTE_OVERHEAD
    nonce, box = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    # What a client in another language does with crypto_box_open_easy(box, nonce, hub public, site secret).
    plain = nacl.public.Box(
        nacl.public.PrivateKey(z85.decode(site_secret)), nacl.public.PublicKey(z85.decode(hub_public))
    ).decrypt(box, nonce)
    assert plain == packed
    assert RouteSealer(hub_secret).seal(site_public, packed) != sealed  # a fresh nonce every time


def test_an_altered_or_forged_box_is_dropped() -> None:
    (hub_public, hub_secret), (site_public, site_secret) = _pairs()
    topic = bytearray(proto.route_topic("GS1", COMMAND, partial(RouteSealer(hub_secret).seal, site_public)))
    topic[-1] ^= 0x01
    site = RouteOpener(site_secret, hub_public)
    assert proto.parse_route("GS1", _frame(bytes(topic)), site.open) is None
    # Sealed by someone who is not the central hub (their own secret key), to the site's public key.
    _, forger_secret = zmq.curve_keypair()
    forged = proto.route_topic("GS1", COMMAND, partial(RouteSealer(forger_secret).seal, site_public))
    assert proto.parse_route("GS1", _frame(forged), site.open) is None
    assert site.failed == 2


def test_a_site_with_keys_takes_only_sealed_routes_and_one_without_only_plain_ones() -> None:
    (hub_public, hub_secret), (site_public, site_secret) = _pairs()
    plain = proto.route_topic("GS1", COMMAND)
    sealed = proto.route_topic("GS1", COMMAND, partial(RouteSealer(hub_secret).seal, site_public))
    site = RouteOpener(site_secret, hub_public)
    assert proto.parse_route("GS1", _frame(plain), site.open) is None
    assert proto.parse_route("GS1", _frame(plain)) == COMMAND
    assert proto.parse_route("GS1", _frame(sealed)) is None
    assert site.failed == 0  # refused before any box was opened


def test_a_route_for_another_site_is_not_opened() -> None:
    (hub_public, hub_secret), (site_public, site_secret) = _pairs()
    sealed = proto.route_topic("GS2", COMMAND, partial(RouteSealer(hub_secret).seal, site_public))
    site = RouteOpener(site_secret, hub_public)
    assert proto.parse_route("GS1", _frame(sealed), site.open) is None
    assert site.failed == 0
