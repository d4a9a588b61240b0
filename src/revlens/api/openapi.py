"""The OpenAPI description of every JSON route, served at `/-/openapi.json` and used by the
schemathesis tests (tests/test_schemathesis.py) to fuzz each route."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _ok(code: int = 200) -> dict[str, Any]:
    return {str(code): {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}


def _query(
    name: str, required: bool = False, description: str = "", schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


ADMIN: list[dict[str, list[str]]] = [{"admin": []}]
PROJECT: list[dict[str, list[str]]] = [{"project": []}, {"admin": []}]
DATE = {"type": "string", "pattern": "^[0-9]{8}$", "example": "20240301"}
EVENT = {"type": "string", "example": '{"event_type": "[Stripe] payment_intent.succeeded"}'}
ANY_OBJECT = {"type": "object", "additionalProperties": True}

SEGMENTATION = [
    _query("e", True, "event JSON", EVENT),
    _query("e2", schema=EVENT),
    _query("m"),
    _query("start", True, schema=DATE),
    _query("end", True, schema=DATE),
    _query("i"),
    _query("s"),
    _query("g"),
    _query("g2"),
    _query("limit"),
    _query("formula"),
    _query("buckets"),
    _query("n"),
]
RETENTION = [
    _query("se", True, schema=EVENT),
    _query("re", True, schema=EVENT),
    _query("rm"),
    _query("rb"),
    _query("i"),
    _query("start", True, schema=DATE),
    _query("end", True, schema=DATE),
    _query("s"),
    _query("g"),
    _query("calendar"),
    _query("intervals"),
]


def schema() -> dict[str, Any]:
    get, post = "get", "post"
    paths: dict[str, Any] = {
        "/-/health": {get: {"security": [], "responses": _ok()}},
        "/-/status": {
            get: {"security": ADMIN, "parameters": [_query("project")], "responses": {**_ok(), **_errors(401, 404)}}
        },
        "/-/projects": {
            get: {"security": ADMIN, "responses": {**_ok(), **_errors(401)}},
            post: {
                "security": ADMIN,
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "currency": {"type": "string"},
                            "timezone": {"type": "string"},
                        },
                        "required": ["name"],
                    }
                ),
                "responses": {**_ok(201), **_errors(400, 401, 409)},
            },
        },
        "/-/projects/{name}": {
            "patch": {
                "security": ADMIN,
                "parameters": [_path("name")],
                "requestBody": _json_body(
                    {"type": "object", "properties": {"currency": {"type": "string"}, "timezone": {"type": "string"}}}
                ),
                "responses": {**_ok(), **_errors(400, 401, 404)},
            }
        },
        "/-/endpoints": {
            get: {"security": ADMIN, "parameters": [_query("project")], "responses": {**_ok(), **_errors(401, 404)}},
            post: {
                "security": ADMIN,
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "project": {"type": "string"},
                            "signing_secrets": {"type": "array", "items": {"type": "string"}},
                            "account": {"type": "string"},
                            "description": {"type": "string"},
                        },
                        "required": ["project", "signing_secrets"],
                    }
                ),
                "responses": {**_ok(201), **_errors(400, 401, 404)},
            },
        },
        "/-/deliveries/{event_id}": {
            get: {"security": ADMIN, "parameters": [_path("event_id")], "responses": {**_ok(), **_errors(401, 404)}}
        },
        "/-/reprocess": {post: {"security": ADMIN, "responses": {**_ok(), **_errors(401)}}},
        "/-/rates": {
            post: {
                "security": ADMIN,
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "base": {"type": "string"},
                            "source": {"type": "string"},
                            "rates": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "date": {"type": "string"},
                                        "currency": {"type": "string"},
                                        "rate": {"type": "string"},
                                    },
                                },
                            },
                        },
                        "required": ["base", "rates"],
                    }
                ),
                "responses": {**_ok(), **_errors(400, 401, 409)},
            }
        },
        "/-/query": {
            post: {
                "security": ADMIN,
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"type": "string", "enum": ["segmentation", "retention", "ltv", "cohort"]},
                            "project": {"type": "string"},
                            "params": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                        "required": ["kind", "project"],
                    }
                ),
                "responses": {**_ok(), **_errors(400, 401, 404)},
            }
        },
        "/metrics": {
            get: {"security": ADMIN, "responses": {"200": {"description": "Prometheus text"}, **_errors(401)}}
        },
        "/api/2/events/segmentation": {
            get: {"security": PROJECT, "parameters": SEGMENTATION, "responses": {**_ok(), **_errors(400, 401, 429)}}
        },
        "/api/2/retention": {
            get: {"security": PROJECT, "parameters": RETENTION, "responses": {**_ok(), **_errors(400, 401, 429)}}
        },
        "/api/2/revenue/ltv": {
            get: {
                "security": PROJECT,
                "parameters": [
                    _query("start", True, schema=DATE),
                    _query("end", True, schema=DATE),
                    _query("m"),
                    _query("i"),
                    _query("s"),
                    _query("g"),
                ],
                "responses": {**_ok(), **_errors(400, 401, 429)},
            }
        },
        "/api/3/cohorts": {get: {"security": PROJECT, "responses": {**_ok(), **_errors(401)}}},
        "/api/cohorts": {
            get: {"security": PROJECT, "responses": {**_ok(), **_errors(401)}},
            post: {
                "security": PROJECT,
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "description": {"type": "string"},
                            "definition": ANY_OBJECT,
                        },
                        "required": ["name", "definition"],
                    }
                ),
                "responses": {**_ok(201), **_errors(400, 401, 413)},
            },
        },
        "/api/cohorts/{cohort_id}": {
            get: {"security": PROJECT, "parameters": [_path("cohort_id")], "responses": {**_ok(), **_errors(401, 404)}},
            "put": {
                "security": PROJECT,
                "parameters": [_path("cohort_id")],
                "requestBody": _json_body(ANY_OBJECT),
                "responses": {**_ok(), **_errors(400, 401, 404)},
            },
            "delete": {
                "security": PROJECT,
                "parameters": [_path("cohort_id")],
                "responses": {**_ok(), **_errors(401, 404)},
            },
        },
        "/api/cohorts/{cohort_id}/members": {
            get: {
                "security": PROJECT,
                "parameters": [_path("cohort_id"), _query("format")],
                "responses": {**_ok(), **_errors(401, 404)},
            }
        },
        "/webhooks/stripe/{endpoint_id}": {
            post: {
                "security": [],
                "parameters": [
                    _path("endpoint_id"),
                    {"name": "Stripe-Signature", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": _json_body(ANY_OBJECT),
                "responses": {**_ok(), **_errors(400, 404, 413, 503)},
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "revlens", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer"},
                "project": {"type": "http", "scheme": "basic"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["ok", "status", "error"],
                    "properties": {
                        "ok": {"type": "boolean"},
                        "status": {"type": "integer"},
                        "error": {"type": "string"},
                    },
                }
            },
        },
    }
