"""Fuzz every operation of the OpenAPI schema in-process: no 5xx, all as documented.

Schemathesis loads ``/api/schema/?format=json`` from the WSGI application and sends
generated requests (valid and invalid) with a real API token of ``user``. Half of
the path ids are the ids of ``user``'s real objects, so the fuzzer reaches the code
behind the ownership checks, not only the 404s. The run is bounded and deterministic:
a fixed seed and ``MAX_EXAMPLES`` per operation. Hugging Face is offline here.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import reliability

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SECTION = "Schemathesis (OpenAPI fuzzing)"
MAX_EXAMPLES = 20
SEED = 20261127
SCHEMA_PATH = "/api/schema/?format=json"
# Streaming bodies: every status is checked for 5xx, but no body schema to conform to.
STREAMING = ("/download/",)

examples: Counter[str] = Counter()
successes: Counter[str] = Counter()
statuses: Counter[int] = Counter()
server_errors: list[str] = []
guarded_deletes: list[str] = []
statuses_by_operation: dict[str, Counter[int]] = {}
started: list[float] = []


@pytest.fixture
def api_token(user: Any) -> str:
    from frontend.services import api_token_create

    _token, raw = api_token_create(user=user, name="schemathesis")
    return raw


@pytest.fixture
def api_token_id(api_token: str) -> str:
    """The fuzzer's own token: DELETE /tokens/{id}/ must not revoke it mid-run."""
    from frontend.models import ApiToken, hash_token

    return str(ApiToken.objects.get(token_hash=hash_token(api_token)).pk)


@pytest.fixture
def _keep_the_test_connection() -> Iterator[None]:
    """As Django's test client does: a finished request must not close the connection
    that holds the test's transaction (schemathesis calls the WSGI app directly)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(
    owned: Any,
    api_token: str,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    _keep_the_test_connection: None,
) -> Any:
    """The schema, loaded in-process; ``user``'s real ids for path parameters."""
    from config.wsgi import application

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=config)
    real_ids = [str(v) for v in owned.ids().values()] + [
        owned.plan_recipe_id,
        owned.job_recipe_id,
    ]

    @schema.hook  # type: ignore[misc]
    def flatmap_path_parameters(ctx: Any, parameters: dict[str, Any]) -> Any:
        if not parameters:
            return st.just(parameters)
        real = {key: st.sampled_from(real_ids) for key in parameters}
        return st.one_of(st.just(parameters), st.fixed_dictionaries(real))

    if not started:
        started.append(time.monotonic())
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx_or_off_schema(
    case: Any, api_token: str, api_token_id: str
) -> None:
    if (
        case.method.upper() == "DELETE"
        and case.operation.path == "/api/v1/tokens/{id}/"
        and str((case.path_parameters or {}).get("id")) == api_token_id
    ):
        # Every other token id is fair game; revoking its own would end the run.
        case.path_parameters = {**case.path_parameters, "id": "0"}
        guarded_deletes.append(api_token_id)
    response = case.call(headers={"Authorization": f"Bearer {api_token}"})
    examples[case.operation.label] += 1
    statuses[response.status_code] += 1
    statuses_by_operation.setdefault(case.operation.label, Counter())[
        response.status_code
    ] += 1
    if 200 <= response.status_code < 300:
        successes[case.operation.label] += 1
    if response.status_code >= 500:
        server_errors.append(f"{case.operation.label} -> {response.status_code}")
    checks = [not_a_server_error, status_code_conformance]
    if not any(part in case.operation.path for part in STREAMING):
        checks += [response_schema_conformance, content_type_conformance]
    case.validate_response(response, checks=checks)


def test_record_the_schemathesis_figures() -> None:
    """Runs after the fuzzing test (same module, in order): the report's figures."""
    if not examples:
        pytest.skip("the fuzzing test did not run in this session")
    reliability.record(SECTION, "operations fuzzed", len(examples))
    reliability.record(SECTION, "examples sent", sum(examples.values()))
    reliability.record(SECTION, "max examples per operation", MAX_EXAMPLES)
    reliability.record(SECTION, "5xx responses seen", len(server_errors))
    for status in sorted(statuses):
        reliability.record(SECTION, f"responses {status}", statuses[status])
    if started:
        reliability.record(
            SECTION, "wall time (s)", round(time.monotonic() - started[0], 1)
        )
    reliability.note(
        SECTION,
        f"Seed {SEED}; positive and negative examples, plus the schema's own examples; "
        "checks: not_a_server_error and status_code_conformance on every operation, "
        "response_schema_conformance and content_type_conformance on all but file "
        "downloads. "
        f"Runs on {os.cpu_count()} CPU cores, in-process (WSGI).",
    )
    assert not server_errors, server_errors
    # The schema's own examples reach the success path, so its body is checked too.
    for label in ("POST /api/v1/plans/", "POST /api/v1/jobs/"):
        assert successes[label], f"{label} never succeeded: {dict(successes)}"
    # A token cannot create tokens: with one, that operation is refused (403), or
    # rate-limited (429) once its scope's count is spent.
    token_posts = statuses_by_operation.get("POST /api/v1/tokens/", Counter())
    assert token_posts[403], dict(token_posts)
    assert set(token_posts) <= {400, 403, 429}, dict(token_posts)
    reliability.record(SECTION, "own-token deletes guarded", len(guarded_deletes))
    reliability.record(SECTION, "operations with a 2xx seen", len(successes))
