"""The alert ladder: codes, labels, wrapping, and user-defined levels."""

from __future__ import annotations

import pytest

from gsmon.common.alerts import (
    STALE_ALERTCODE,
    STALE_ALERTSTR,
    Alert,
    CriticalAlert,
    GreenAlert,
    NoAlert,
    OrangeAlert,
    RedAlert,
    alertstr_for,
    as_alert,
)


class MaintenanceAlert(Alert):
    """A user level between Green and Orange."""

    alertstr = "MAINT"
    alertcode = 15


@pytest.mark.parametrize(
    ("cls", "code", "label"),
    [
        (NoAlert, 0, None),
        (GreenAlert, 10, "GREEN"),
        (OrangeAlert, 20, "ORANGE"),
        (RedAlert, 30, "RED"),
        (CriticalAlert, 100, "CRITICAL"),
    ],
)
def test_seed_ladder_codes_and_labels(cls: type[Alert], code: int, label: str | None) -> None:
    """Each built-in level keeps the seed's code and label."""
    assert cls.alertcode == code
    assert cls.alertstr == label
    assert cls(1).alertcode == code


def test_stale_sits_between_red_and_critical() -> None:
    """The hub's STALE level (50, "STALE") is worse than Red and better than Critical."""
    assert STALE_ALERTCODE == 50
    assert STALE_ALERTSTR == "STALE"
    assert RedAlert.alertcode < STALE_ALERTCODE < CriticalAlert.alertcode


def test_ladder_is_strictly_ordered() -> None:
    """NoAlert < Green < Orange < Red < Critical."""
    codes = [c.alertcode for c in (NoAlert, GreenAlert, OrangeAlert, RedAlert, CriticalAlert)]
    assert codes == sorted(set(codes))


def test_alert_wraps_value() -> None:
    """An alert keeps the value it wraps in ``val``."""
    assert RedAlert(42.5).val == 42.5
    assert GreenAlert(None).val is None


def test_str_shows_value_label_and_code() -> None:
    """str() reads like the seed's: quoted value, label (NO for none) and code."""
    assert str(RedAlert(3)) == "'3' ( RED alert<30> )"
    assert str(NoAlert("x")) == "'x' ( NO alert<0> )"


def test_repr_names_class_and_value() -> None:
    """repr() is the constructor call."""
    assert repr(OrangeAlert("hot")) == "OrangeAlert('hot')"


def test_equality_needs_same_level_and_value() -> None:
    """Alerts are equal only when level and value both match."""
    assert RedAlert(1) == RedAlert(1)
    assert RedAlert(1) != RedAlert(2)
    assert RedAlert(1) != GreenAlert(1)
    assert RedAlert(1) != 1
    assert hash(RedAlert(1)) == hash(RedAlert(1))


def test_as_alert_wraps_plain_values_in_noalert() -> None:
    """A plain return value becomes NoAlert; an Alert passes through unchanged."""
    wrapped = as_alert(7)
    assert type(wrapped) is NoAlert
    assert wrapped.val == 7
    red = RedAlert(1)
    assert as_alert(red) is red
    assert type(as_alert(None)) is NoAlert


def test_alertstr_for_builtin_codes() -> None:
    """Built-in codes, STALE included, have labels; NoAlert and unknown codes have none."""
    assert alertstr_for(10) == "GREEN"
    assert alertstr_for(20) == "ORANGE"
    assert alertstr_for(30) == "RED"
    assert alertstr_for(50) == "STALE"
    assert alertstr_for(100) == "CRITICAL"
    assert alertstr_for(0) == ""
    assert alertstr_for(15) == ""


def test_alertstr_for_prefers_known_user_labels() -> None:
    """Labels learnt from user subclasses win over the built-in table."""
    assert alertstr_for(15, {15: "MAINT"}) == "MAINT"
    assert alertstr_for(30, {30: "FAULT"}) == "FAULT"
    assert alertstr_for(20, {15: "MAINT"}) == "ORANGE"


def test_user_subclass_has_its_own_code_and_label() -> None:
    """A user subclass carries its own code and label and wraps values like the built-ins."""
    alert = MaintenanceAlert("servicing")
    assert alert.alertcode == 15
    assert alert.alertstr == "MAINT"
    assert str(alert) == "'servicing' ( MAINT alert<15> )"
    assert as_alert(alert) is alert
    assert GreenAlert.alertcode < alert.alertcode < OrangeAlert.alertcode


def test_user_subclass_without_slots_still_works() -> None:
    """A subclass that does not declare __slots__ may add attributes of its own."""

    class Tagged(Alert):
        alertstr = "TAG"
        alertcode = 5

    alert = Tagged(1)
    alert.note = "extra"  # type: ignore[attr-defined]
    assert alert.note == "extra"  # type: ignore[attr-defined]
