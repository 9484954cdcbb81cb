"""``mhsafety serve --checkpoint DIR --upstream URL``: the real command, a real baseline
checkpoint, two worker processes, the official client."""

from __future__ import annotations

import subprocess
import sys

import openai

from mhsafety.testing import FakeUpstream
from tests.helpers.guard_servers import REPO, start_server, stop_server

REPLY = "听起来你最近压力很大，愿意多说一些吗？"


def test_serve_with_upstream_gateway(baseline_checkpoint, tmp_path):
    with FakeUpstream(REPLY, piece_chars=3) as up:
        server = start_server(baseline_checkpoint, tmp_path / "serve.log", "--upstream",
                              up.url, "--workers", "2", "--hold-back", "8")
        try:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
            messages = [{"role": "user", "content": "我最近压力很大，晚上睡不着"}]
            completion = client.chat.completions.create(model="m", messages=messages)
            obj = completion.model_extra["mhsafety"]
            assert obj["tier"] in ("rules", "model") and obj["decision"] in ("safe", "unsafe")
            if obj["action"] == "allow":
                assert completion.choices[0].message.content == REPLY
            chunks = list(client.chat.completions.create(model="m", messages=messages,
                                                         stream=True))
            final = chunks[-1].model_extra["mhsafety"]
            assert final["stream"]["hold_back"] == 8
            assert final["decision"] == obj["decision"]
        finally:
            stop_server(server)
    assert "睡不着" not in server.log_text() and REPLY not in server.log_text()


def test_gateway_options_need_upstream(baseline_checkpoint):
    result = subprocess.run(
        [sys.executable, "-m", "mhsafety", "serve", "--checkpoint", str(baseline_checkpoint),
         "--hold-back", "4"], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 2 and "--upstream" in result.stderr
    assert "Traceback" not in result.stderr
