"""Property-based fuzzing of the real server from its own OpenAPI schema (schemathesis):
valid and invalid requests alike never get a 5xx, and every answer matches the documented
status codes, content types and response bodies.

schemathesis' pytest plugin (``from_fixture``) does not run on this pytest, so the cases are
drawn with hypothesis from each operation's strategy directly.
"""

from __future__ import annotations

import httpx
import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install 'mhsafety[test]')")
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_never_errors(baseline_server, mode):
    schema = schemathesis.openapi.from_url(f"{baseline_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/check", "POST /v1/check_dialogue", "GET /v1/taxonomy", "GET /v1/policy",
        "GET /healthz", "GET /readyz", "GET /metrics"}
    seen = []
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and operation.method != "post":
            continue  # GETs without parameters have no invalid form to generate

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25 if operation.method == "post" else 5, deadline=None,
                  database=None, suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(base_url=baseline_server.url, timeout=30)
            seen.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        run()
    assert seen and max(seen) < 500
    # Then the server still answers a good request.
    good = {"context": "[seeker]你好", "response": "[supporter]你好，想聊聊什么？"}
    assert httpx.post(f"{baseline_server.url}/v1/check", json=good).status_code == 200
