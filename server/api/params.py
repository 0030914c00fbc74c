"""Query strings read as one pydantic model, in one validation.

FastAPI can take a model as `Annotated[Model, Query()]`, but it then walks the model field by
field on every request (aliases, sequence checks, one validation each): a fifth of the CPU of
the task listing. `parse_query` validates the whole query string at once and raises the same
`RequestValidationError`, so a bad value is the same 422; `query_parameters` documents the
fields in OpenAPI as FastAPI would.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from server.models import ID_MAX

M = TypeVar("M", bound=BaseModel)
# Ids in paths: one the id columns cannot hold is a 422 naming it, like any bad input.
TaskId = Annotated[int, Path(ge=1, le=ID_MAX, description="The task's id")]
ConversationId = Annotated[int, Path(ge=1, le=ID_MAX, description="The conversation's id")]


def parse_query(request: Request, model: type[M]) -> M:
    # A repeated key counts once, with its last value, as FastAPI reads a scalar parameter.
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in errors]
        ) from None


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` with `parse_query`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", ()))
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": field,
                **({"description": field["description"]} if "description" in field else {}),
            }
            for name, field in schema["properties"].items()
        ]
    }
