"""GatewayConfig checks itself once; its stream and webhook settings derive from it."""

from __future__ import annotations

import pytest

from mhsafety.guard.gateway import GatewayConfig
from mhsafety.guard.streaming import StreamSettings
from mhsafety.settings import SettingsError, build


def test_defaults_come_from_the_stream_settings():
    cfg = GatewayConfig(upstream="http://127.0.0.1:9000/v1")
    assert cfg.stream_settings == StreamSettings()
    assert cfg.webhook_settings.max_attempts == cfg.webhook_attempts


@pytest.mark.parametrize("values, param", [
    ({"upstream": "ftp://x"}, "upstream"),
    ({"upstream": "http://x/v1", "window_every": 64, "window_chars": 10}, "window_chars"),
    ({"upstream": "http://x/v1", "seeker_action": "block"}, "seeker_action"),
    ({"upstream": "http://x/v1", "max_concurrent": 0}, "max_concurrent"),
    ({"upstream": "http://x/v1", "webhook_url": "nope"}, "webhook_url"),
])
def test_bad_values_name_the_parameter(values, param):
    with pytest.raises(SettingsError) as caught:
        build(GatewayConfig, values, "gateway")
    assert param in caught.value.params


def test_strings_are_coerced():
    cfg = build(GatewayConfig, {"upstream": "http://x/v1", "hold_back": "0",
                                "seeker_rules": "off"})
    assert cfg.hold_back == 0 and cfg.seeker_rules is False
