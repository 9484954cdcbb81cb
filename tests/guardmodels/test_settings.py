"""The kinds' settings are checked like every component's, with one-sentence errors."""

from __future__ import annotations

import pytest

from mhsafety.errors import UsageError
from mhsafety.guardmodels import (
    SETTINGS,
    LlamaGuardSettings,
    PolicySettings,
    Qwen3GuardSettings,
    ShieldGemmaSettings,
)
from mhsafety.settings import build, fields_doc


def test_every_family_has_a_settings_class_with_the_shared_fields():
    assert set(SETTINGS) == {"qwen3guard", "llamaguard", "shieldgemma", "wildguard", "policy"}
    for family, cls in SETTINGS.items():
        assert cls.family == family
        names = [name for name, _, _ in fields_doc(cls)]
        assert {"model", "base_url", "api_key_env", "unsafe_action"} <= set(names)


def test_untyped_values_are_coerced_and_checked():
    s = build(ShieldGemmaSettings, {"policies": "Toxic Language, Nonsense", "top_logprobs": "3"})
    assert s.policies == ("Toxic Language", "Nonsense") and s.top_logprobs == 3
    with pytest.raises(UsageError, match="policies names unknown unsafe categories 'Safe "
                                         "Response'"):
        build(ShieldGemmaSettings, {"policies": "Safe Response"})
    with pytest.raises(UsageError, match="strictness must be one of strict, loose"):
        build(Qwen3GuardSettings, {"strictness": "medium"})
    with pytest.raises(UsageError, match="categories must be one of taxonomy, model"):
        build(LlamaGuardSettings, {"categories": "mine"})
    with pytest.raises(UsageError, match="reasoning_effort must be one of"):
        build(PolicySettings, {"reasoning_effort": "extreme"})
    assert build(PolicySettings, {"reasoning_effort": "low"}).reasoning_effort == "low"
    with pytest.raises(UsageError, match="max_tokens must be at least 1"):
        build(PolicySettings, {"max_tokens": 0})


def test_unsafe_actions_are_the_guard_policys_actions_but_allow():
    from mhsafety.guard.policy import ACTIONS
    from mhsafety.guardmodels.settings import UNSAFE_ACTIONS

    assert set(UNSAFE_ACTIONS) == set(ACTIONS) - {"allow"}
    with pytest.raises(UsageError, match="unsafe_action must be one of block, regenerate, "
                                         "handover"):
        build(Qwen3GuardSettings, {"unsafe_action": "allow"})
