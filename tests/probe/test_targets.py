"""Endpoint specs and the probe's settings: one sentence naming the parameter."""

from __future__ import annotations

import pytest

from mhsafety.probe.targets import ProbeSettings, chat_settings, parse_endpoint
from mhsafety.settings import SettingsError


def test_endpoint_spec_with_and_without_a_name():
    ep = parse_endpoint("bot=qwen3:8b@http://127.0.0.1:8000/v1")
    assert (ep.name, ep.model, ep.base_url) == ("bot", "qwen3:8b", "http://127.0.0.1:8000/v1")
    ep = parse_endpoint("gpt-4o-mini@https://api.openai.com/v1")
    assert ep.name == "gpt-4o-mini"
    with pytest.raises(SettingsError, match="expects \\[NAME=\\]MODEL@BASE_URL"):
        parse_endpoint("just-a-model")
    with pytest.raises(SettingsError, match="has no scheme"):
        parse_endpoint("m@localhost:8000/v1")


def test_settings_rules_name_parameters(tmp_path):
    base = {"targets": ["m@http://x/v1"], "grader": "g"}
    with pytest.raises(SettingsError, match="at least one targets"):
        ProbeSettings(grader="g", data=tmp_path)
    with pytest.raises(SettingsError, match="choose one probe: data .* or personas"):
        ProbeSettings(**base)
    with pytest.raises(SettingsError, match="personas needs seeker"):
        ProbeSettings(**base, personas="default")
    with pytest.raises(SettingsError, match="named 'm'"):
        ProbeSettings(targets=["m@http://x/v1", "m@http://y/v1"], grader="g", data=tmp_path)
    with pytest.raises(SettingsError, match="seeker is for the multi-turn probe"):
        ProbeSettings(**base, data=tmp_path, seeker="s@http://x/v1")


def test_a_target_asks_for_text_with_a_real_budget(tmp_path):
    settings = ProbeSettings(targets=["bot=m@http://x/v1"], grader="g", data=tmp_path,
                             max_tokens=300, temperature=0.2)
    chat = chat_settings(settings.endpoints[0], settings)
    assert chat.output == "text" and chat.budget == 300 and chat.temperature == 0.2
    assert chat.name == "bot"
