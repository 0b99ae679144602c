"""Property-based tests of the whole API against its OpenAPI schema (Schemathesis, in-process WSGI)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from portal.wsgi import application
from tests.portal.api_helpers import make_key, make_person, publish

MAX_EXAMPLES = 12


def _openapi() -> dict:
    """Return the schema exactly as /api/v1/schema/?format=json serves it."""
    raw = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(raw))


schema = schemathesis.openapi.from_dict(_openapi())


@pytest.fixture
def wsgi_app(db):  # type: ignore[no-untyped-def]
    # Like Django's test client: keep the test's connection (and transaction) across WSGI requests.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield application
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def operator_headers(db):  # type: ignore[no-untyped-def]
    person, _ = make_person(1, name="周杰")
    publish(subject=person)
    publish()
    _, secret = make_key(["read", "screen", "operator"], rate_per_minute=1_000_000, quota_per_day=10_000_000)
    return {"Authorization": f"Bearer {secret}"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_answers_without_server_errors_and_as_documented(
    case, operator_headers, wsgi_app
) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        headers=operator_headers, checks=[not_a_server_error, response_schema_conformance], app=wsgi_app
    )


def test_the_schema_and_docs_page_are_served(client) -> None:  # type: ignore[no-untyped-def]
    schema_response = client.get("/api/v1/schema/?format=json")
    docs = client.get("/api/v1/docs/")
    assert schema_response.status_code == 200 and schema_response.json()["openapi"].startswith("3.")
    assert docs.status_code == 200 and "/api/v1/changes" in docs.content.decode()
    assert "<script" not in docs.content.decode()
