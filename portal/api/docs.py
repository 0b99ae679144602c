"""A server-rendered API docs page built from the OpenAPI schema (no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator


@cache
def _operations() -> list[dict[str, Any]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            operations.append(
                {
                    "id": op.get("operationId", ""),
                    "method": method.upper(),
                    "path": path.removeprefix("/api/v1"),
                    "summary": op.get("description", ""),
                    "parameters": op.get("parameters", []),
                    "responses": list(op.get("responses", {})),
                }
            )
    return operations


def api_docs(request: HttpRequest) -> HttpResponse:
    """Render the list of endpoints with their parameters and responses."""
    return render(request, "api/docs.html", {"operations": _operations()})
