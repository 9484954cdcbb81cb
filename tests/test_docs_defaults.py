"""Every default the docs/cli pages write for a settings field is the dataclass's default.

Checked: option tables (``| `--flag ...` | default | meaning |``) and prose of the form
``--flag`` ... ``(default X)``. A flag is matched to its field the way the command line is
built (:func:`mhsafety.settings.flag`), plus the options written by hand listed below; flags
that are no setting are left alone. A page names its settings classes in :data:`PAGES`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mhsafety.annotate.config import AnnotateServerConfig
from mhsafety.classifiers.encoder_config import EncoderConfig
from mhsafety.guard import GuardConfig
from mhsafety.guard.gateway import GatewayConfig
from mhsafety.guard.service.config import ServiceConfig
from mhsafety.judge.settings import JudgeSettings
from mhsafety.leaderboard import LeaderboardSettings
from mhsafety.probe.targets import ProbeSettings
from mhsafety.settings import default_text, field_default, flag

DOCS = Path(__file__).parents[1] / "docs" / "cli"
# page -> (settings classes, flags written by hand -> field)
PAGES: dict[str, tuple[tuple[type, ...], dict[str, str]]] = {
    "judge.md": ((JudgeSettings,), {"--header": "headers"}),
    "annotate.md": ((AnnotateServerConfig,), {}),
    "guard.md": ((GuardConfig, ServiceConfig), {}),
    "gateway.md": ((GatewayConfig,), {}),
    "leaderboard.md": ((LeaderboardSettings,), {"--system": "systems"}),
    "probe.md": ((ProbeSettings,), {}),
    # predict's --batch-size is the prediction batch (cli/options.py writes it by hand).
    "encoder.md": ((EncoderConfig,), {"--batch-size": "eval_batch_size"}),
}
# Defaults the docs describe in words because the field's None stands for a rule
# (max_tokens: a budget chosen per output and model, template: the built-in one, ...).
_WORDS = {"none", "not sent", "built-in"}
_FLAG = re.compile(r"`(--[a-z][a-z0-9-]*)")
_PROSE = re.compile(r"`(--[a-z][a-z0-9-]*)[^`]*`[^`(\n]{0,12}\(default:?\s+([^),;]+)")


def _fields(classes: tuple[type, ...], by_hand: dict[str, str]) -> dict[str, tuple[type, str]]:
    out = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            out[flag(cls, f.name)] = (cls, f.name)
        out.update({k: (cls, v) for k, v in by_hand.items()
                    if v in {f.name for f in dataclasses.fields(cls)}})
    return out


def _default(cls: type, name: str):
    return field_default(next(f for f in dataclasses.fields(cls) if f.name == name))


def _same(written: str, default) -> bool:
    text = written.strip().strip("`").strip()
    if default is None:
        # A rule in words ("10; 40 with --output json", "MODEL zero-shot") is fine, a bare
        # value is not: None has none.
        return text.lower() in _WORDS or not re.fullmatch(r"[\w.:/-]+", text) or \
            text == "MODEL"
    if isinstance(default, (dict, list)) and not default:
        return text == "none"
    if isinstance(default, bool):
        return text == default_text(default)
    if isinstance(default, (int, float)):
        try:
            return float(text.replace(",", "")) == float(default)
        except ValueError:
            return False
    return text == default_text(default)


def _claims(page: str) -> list[tuple[str, str]]:
    """(flag, written default) pairs of a page: table rows, then prose."""
    text = (DOCS / page).read_text(encoding="utf-8")
    out: list[tuple[str, str]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if "default" not in header or set(cells[0]) <= {"-"}:
            continue
        flags = _FLAG.findall(cells[0])
        values = cells[header.index("default")].split(", ")
        if flags and len(values) == len(flags):
            out += list(zip(flags, values))
    out += _PROSE.findall(text)
    return out


@pytest.mark.parametrize("page", sorted(PAGES))
def test_docs_defaults_are_the_dataclass_defaults(page):
    classes, by_hand = PAGES[page]
    fields = _fields(classes, by_hand)
    checked = []
    for written_flag, written in _claims(page):
        if written_flag not in fields:
            continue  # an option that is no setting
        cls, name = fields[written_flag]
        default = _default(cls, name)
        assert _same(written, default), (
            f"docs/cli/{page}: {written_flag} says default {written!r}, "
            f"{cls.__name__}.{name} is {default!r}")
        checked.append(name)
    assert checked, f"docs/cli/{page}: no default found to check"


def test_the_judge_page_checks_about_thirty_defaults():
    classes, by_hand = PAGES["judge.md"]
    fields = _fields(classes, by_hand)
    assert len({fields[f][1] for f, _ in _claims("judge.md") if f in fields}) >= 25


def test_a_wrong_default_in_the_docs_fails(tmp_path, monkeypatch):
    page = (DOCS / "judge.md").read_text(encoding="utf-8")
    assert "| `--rounds N` | 5 |" in page
    (tmp_path / "judge.md").write_text(page.replace("| `--rounds N` | 5 |",
                                                    "| `--rounds N` | 3 |"), encoding="utf-8")
    monkeypatch.setitem(globals(), "DOCS", tmp_path)
    with pytest.raises(AssertionError, match="--rounds says default '3'"):
        test_docs_defaults_are_the_dataclass_defaults("judge.md")
