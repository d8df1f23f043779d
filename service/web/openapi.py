"""The API document: where it is served, what it says of itself and what it calls each operation (`api_document`),
and the rules the validators apply, stated exactly: one OpenAPI schema plugin fills in what Litestar's generator
rounds or leaves out.

- Integer bounds. Litestar writes `ge`/`le`/`gt`/`lt` as floats, so the largest id, 2**63 - 1, came out as
  9.223372036854776e+18, which is 2**63: a client trusting it would send an id the API refuses. Bounds set by
  `msgspec.Meta` on an item type (`list[DeveloperId]`) were dropped altogether.
- Ids in paths. They are read by a type of their own (service.web.path_ids), which the document shows as the integer
  it is, with its bounds.
- Closed bodies. msgspec rejects unknown fields of a Struct declared with `forbid_unknown_fields=True`; the
  document says so with `additionalProperties: false`, with `minProperties` when the Struct declares a
  `min_properties` its users enforce, and with an `anyOf` of objects that each require one field (under `allOf`)
  when it declares `required_one_of`: fields of which at least one must be given.
- Named choices. The Literal types of NAMED_CHOICES are a component each, referred to wherever a field or a
  parameter takes them (Litestar writes a Literal inline at every use).
"""

from __future__ import annotations

import functools
from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import msgspec
from litestar import Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import KwargDefinition
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from service.core.validation import ID_MAX
from service.db.models import ImportStatus, OnConflict, Role
from service.web.docs_pages import PAGES, REVALIDATED, ScalarPages, SwaggerPages, assets_router
from service.web.path_ids import PathId

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.handlers import HTTPRouteHandler
    from litestar.types import Method
    from litestar.types.internal_types import PathParameterDefinition


def api_document() -> OpenAPIConfig:
    """The document at /schema/openapi.json, with Swagger UI at /schema and /schema/swagger and Scalar at
    /schema/scalar, each page served whole by the service (service.web.docs_pages)."""
    return OpenAPIConfig(
        title="Developer directory",
        version="1.0.0",
        description=(
            "Developers, listed by specialty in name order, with keyset pagination. Every /api route but the "
            "token route needs a bearer token: sign in at /api/access/token (Authorize, in the UI)."
        ),
        path="/schema",
        # The API document is public, like the probes: its routes opt out of auth where they are declared.
        openapi_router=Router(
            "/schema",
            route_handlers=[assets_router(PAGES, cache_control=REVALIDATED)],
            include_in_schema=False,
            opt={"exclude_from_auth": True},
        ),
        render_plugins=[SwaggerPages(), ScalarPages()],
        operation_id_creator=operation_id,
    )


def operation_id(route_handler: HTTPRouteHandler, _: Method, __: list[str | PathParameterDefinition]) -> str:
    """The handler's name in camelCase (`list_developers`: `listDevelopers`), the method a generated client gets:
    handlers are named for what they do, uniquely (Litestar refuses a repeated operation id)."""
    first, *rest = route_handler.handler_name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def streamed(*, body: RequestBody | None = None, answer: OpenAPIResponse | None = None) -> type[Operation]:
    """The OpenAPI operation of a route that streams its request body or its 200 answer, which Litestar cannot
    infer from a handler that reads the body itself or returns a raw ASGI answer: `body` and `answer` as given
    (copied into each app's document, which is then its own to change)."""

    @dataclass
    class StreamedOperation(Operation):
        def __post_init__(self) -> None:
            if body is not None:
                self.request_body = deepcopy(body)
            if answer is not None:
                assert self.responses is not None  # Litestar fills them in before it builds the operation
                self.responses["200"] = deepcopy(answer)

    return StreamedOperation


# The choices the document names once, as a component each, wherever a field or parameter takes them: a client
# generated from it has one enum for each, not one per place (ImportJobOnConflict, SubmitImportCsvOnConflict, ...).
NAMED_CHOICES: dict[Any, str] = {OnConflict: "OnConflict", ImportStatus: "ImportStatus", Role: "Role"}

# Schema attribute for each bound, named as both Litestar's KwargDefinition and msgspec.Meta name it.
_BOUNDS = {"ge": "minimum", "gt": "exclusive_minimum", "le": "maximum", "lt": "exclusive_maximum"}


class ExactSchemaPlugin(OpenAPISchemaPlugin):
    """Integers keep their exact bounds, ids in paths are integers from 1 to ID_MAX; Structs that forbid unknown
    fields say `additionalProperties: false`.

    Registered before Litestar's own schema plugins, so it sees these fields first; for a Struct it lets the
    next plugin that handles Structs (Litestar's) build the schema, and closes it.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return (
            _named_choice(field_definition) is not None
            or field_definition.annotation is PathId
            or bool(_int_bounds(field_definition))
            or _is_closed_struct(field_definition)
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        if (name := _named_choice(field_definition)) is not None:
            return _choice(name, field_definition, schema_creator)
        if _is_closed_struct(field_definition):
            builder = next(
                plugin
                for plugin in schema_creator.plugins
                if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
            )
            schema = builder.to_openapi_schema(field_definition, schema_creator)
            schema.additional_properties = False
            schema.min_properties = getattr(field_definition.annotation, "min_properties", None)
            if one_of := getattr(field_definition.annotation, "required_one_of", None):
                schema.all_of = [Schema(any_of=[_requiring(schema, name) for name in one_of])]
            return schema
        if field_definition.annotation is PathId:
            return Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=ID_MAX)
        schema = Schema(type=OpenAPIType.INTEGER)
        for bound, value in _int_bounds(field_definition).items():
            setattr(schema, _BOUNDS[bound], value)
        return schema


def _named_choice(field_definition: FieldDefinition) -> str | None:
    annotation = field_definition.annotation
    try:
        return NAMED_CHOICES.get(annotation)
    except TypeError:  # an unhashable annotation names no choice
        return None


@functools.cache
def _choice_key(name: str) -> FieldDefinition:
    """The one field definition the registry knows component `name` by (it compares each use's with the first)."""
    return FieldDefinition.from_annotation(str, kwarg_definition=KwargDefinition(schema_component_key=name))


def _choice(name: str, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
    """A reference to the component of these choices, registered on first use; a parameter's default and description
    stay with the parameter, beside the reference."""
    key = _choice_key(name)
    registry = schema_creator.schema_registry
    component = registry.get_schema_for_field_definition(key)
    if component.enum is None:
        component.type, component.title = OpenAPIType.STRING, name
        component.enum = list(get_args(field_definition.annotation))
    reference = registry.get_reference_for_field_definition(key)
    assert reference is not None  # registered above
    return Schema(all_of=[reference])


def _requiring(schema: Schema, name: str) -> Schema:
    """An object in which the field `name` of `schema` is given. (Under `allOf`, with its property, so that
    openapi-typescript reads the whole as the fields & (one given | another | ...): an `anyOf` of bare `required`
    beside the properties came out as `unknown`.)"""
    field = deepcopy((schema.properties or {})[name])
    return Schema(type=OpenAPIType.OBJECT, required=[name], properties={name: field})


def _int_bounds(field_definition: FieldDefinition) -> dict[str, int]:
    """The integer bounds of an `int` field, from its Parameter/Body or from `msgspec.Meta` on its type."""
    if field_definition.annotation is not int:  # bool is an int subclass, but not the int type itself
        return {}
    sources = [field_definition.kwarg_definition, *field_definition.metadata]
    return {
        bound: value
        for source in sources
        if source is not None
        for bound in _BOUNDS
        if isinstance(value := getattr(source, bound, None), int)
    }


def _is_closed_struct(field_definition: FieldDefinition) -> bool:
    annotation = field_definition.annotation
    return (
        not field_definition.is_union
        and isinstance(annotation, type)
        and issubclass(annotation, msgspec.Struct)
        and annotation.__struct_config__.forbid_unknown_fields
    )
