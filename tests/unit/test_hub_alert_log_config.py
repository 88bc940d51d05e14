"""The hub configuration's [logging] alerts / alert_threshold keys (the agents' pair, for the merged tree)."""

from __future__ import annotations

import logging

import pytest

from gsmon.hub.config import ConfigError, parse_hub_config


def test_the_defaults_log_transitions_into_or_out_of_red_at_warning() -> None:
    settings = parse_hub_config("").settings
    assert (settings.alert_log_level, settings.alert_log_threshold) == (logging.WARNING, 30)


@pytest.mark.parametrize(
    ("text", "level", "threshold"),
    [
        ('alerts = "info"\nalert_threshold = "orange"', logging.INFO, 20),
        ('alerts = "OFF"', None, 30),
        ('alert_threshold = "CRITICAL"', logging.WARNING, 100),
        ('alert_threshold = "GREEN"', logging.WARNING, 10),
    ],
)
def test_alerts_and_alert_threshold_are_read(text: str, level: int | None, threshold: int) -> None:
    settings = parse_hub_config(f"[logging]\n{text}\n").settings
    assert (settings.alert_log_level, settings.alert_log_threshold) == (level, threshold)


@pytest.mark.parametrize(("key", "value"), [("alerts", '"LOUD"'), ("alert_threshold", '"STALE"'), ("alerts", "3")])
def test_a_bad_value_is_one_clear_error(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"logging.{key}"):
        parse_hub_config(f"[logging]\n{key} = {value}\n", "hub.toml")
