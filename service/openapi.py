"""The API document states the rules the validators apply, exactly: one OpenAPI schema plugin fills in what
Litestar's generator rounds or leaves out.

- Integer bounds. Litestar writes `ge`/`le`/`gt`/`lt` as floats, so the largest id, 2**63 - 1, came out as
  9.223372036854776e+18, which is 2**63: a client trusting it would send an id the API refuses. Bounds set by
  `msgspec.Meta` on an item type (`list[DeveloperId]`) were dropped altogether.
- Ids in paths. They are read by a type of their own (service.path_ids), which the document shows as the integer
  it is, with its bounds.
- Closed bodies. msgspec rejects unknown fields of a Struct declared with `forbid_unknown_fields=True`; the
  document says so with `additionalProperties: false`, and with `minProperties` when the Struct declares a
  `min_properties` its users enforce.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin

from service.path_ids import PathId
from service.validation import ID_MAX

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

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
            field_definition.annotation is PathId
            or bool(_int_bounds(field_definition))
            or _is_closed_struct(field_definition)
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        if _is_closed_struct(field_definition):
            builder = next(
                plugin
                for plugin in schema_creator.plugins
                if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
            )
            schema = builder.to_openapi_schema(field_definition, schema_creator)
            schema.additional_properties = False
            schema.min_properties = getattr(field_definition.annotation, "min_properties", None)
            return schema
        if field_definition.annotation is PathId:
            return Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=ID_MAX)
        schema = Schema(type=OpenAPIType.INTEGER)
        for bound, value in _int_bounds(field_definition).items():
            setattr(schema, _BOUNDS[bound], value)
        return schema


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
