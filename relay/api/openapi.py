"""The OpenAPI 3.1 document, generated from the endpoint specs and the pydantic models the
handlers validate with, so the document describes exactly what the code accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from relay.api import models as m
from relay.api.framework import Spec

_STATUS_TEXT = {400: "Bad request", 401: "No or wrong bearer token", 403: "Wrong scope",
                404: "Not found", 409: "Conflict", 413: "Body too large",
                422: "Invalid input (the field is named)", 500: "Internal error",
                503: "Database unavailable, retry later"}  # fmt: skip


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop,
         "description": prop.get("description", "")}
        for name, prop in schema.get("properties", {}).items()
    ]  # fmt: skip


def _operation(spec: Spec, components: dict[str, Any]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "description": text,
         "schema": {"type": "integer"} if name == "archive_id" else {"type": "string"}}
        for name, text in spec.path_params.items()
    ]  # fmt: skip
    if spec.query is not None:
        params += _query_params(spec.query)
    if spec.response is not None:
        content = {"application/json": {"schema": _ref(spec.response, components)}}
    else:
        content = {spec.media_type: {"schema": {"type": "string", "format": "binary"}}}
    error = {"application/json": {"schema": _ref(m.Error, components)}}
    responses: dict[str, Any] = {str(spec.status): {"description": "Success", "content": content}}
    statuses = {401, 403, 500, 503, *spec.errors}
    if spec.body is not None:
        statuses |= {413, 422}
    if spec.query is not None:
        statuses.add(422)
    for status in sorted(statuses):
        responses[str(status)] = {"description": _STATUS_TEXT[status], "content": error}
    op: dict[str, Any] = {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "tags": [spec.scopes[0]],
        "security": [{"bearer": []}],
        "x-scopes": list(spec.scopes),
        "parameters": params,
        "responses": responses,
    }
    if spec.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(spec.body, components)}},
        }
    return op


def document(specs: list[Spec], version: str) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relay provisioning and ops API",
            "version": version,
            "description": "Bearer tokens from settings (api.marketplace_tokens, "
            'api.ops_tokens). Errors: {"error": {status, code, message, field}}.',
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
