"""The JSON Schema subset structured outputs accept (`output_config.format.schema`), checked as the API does.

Source: https://platform.claude.com/docs/en/build-with-claude/structured-outputs#json-schema-limitations
("JSON Schema limitations": "If you use an unsupported feature, you'll receive a 400 error with
details"). Supported: the basic types, also as a type array (`"type": ["string", "null"]`, counted
among the "parameters with union types" of the same page's "Schema complexity limits"); `enum` of
strings, numbers, booleans or nulls; `const`; `anyOf` and `allOf` (not `allOf` with `$ref`); local
`$ref` into `$defs` or `definitions`; `default`; `required`; `additionalProperties: false` (on every
object); the string formats listed in `STRING_FORMATS`; `minItems` of 0 or 1. Not supported, each
a 400 naming the keyword: recursive schemas, complex types within enums, external `$ref`, numeric
and string constraints, array constraints beyond `minItems` 0 or 1, any other keyword. The SDK's
`transform_schema` (`anthropic/lib/_parse/_transform.py`) agrees: what it moves into a description
(ranges, lengths, `maxItems`, unknown formats, non-primitive enum values) is what the API refuses.

Pure functions over the parsed body; every check raises `ApiError` through `invalid()`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .api_errors import invalid
from .canonical import canonical_json

__all__ = ["DEF_PREFIXES", "SCHEMA_KEYS", "SCHEMA_TYPES", "STRING_FORMATS", "check_output_schema", "local_defs"]

SCHEMA_KEYS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf", "allOf",
        "$ref", "$defs", "definitions", "description", "title", "format", "minItems", "default",
    }
)  # fmt: skip
STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid", "text"}
)
SCHEMA_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
DEF_PREFIXES = ("#/$defs/", "#/definitions/")
DEF_KEYS = ("$defs", "definitions")
# Not a documented limit: the API refuses schemas too complex to compile ("Schema is too complex"),
# and no schema a person writes nests this deep; the cap keeps every check and answer off Python's stack limit.
MAX_SCHEMA_DEPTH = 64
# Likewise for size once every `$ref` is expanded (definitions that use each other twice double at each step).
MAX_EXPANDED_NODES = 10_000
# "Schema complexity limits" > "Explicit limits" on the same docs page, per request:
MAX_UNION_PARAMS = 16  # "Total parameters that use `anyOf` or type arrays (for example, `"type": ["string", "null"]`)"
VALID_SCHEMAS_KEPT = 256  # schemas found valid, by canonical text (each job sends one)
_VALID: OrderedDict[tuple[str, str], None] = OrderedDict()
MAX_OPTIONAL_PARAMS = 24  # "Each parameter not listed in `required` counts toward this limit."


def local_defs(root: dict[str, Any]) -> dict[str, Any]:
    """The root's definitions by `$ref` target (`#/$defs/X`, `#/definitions/X`)."""
    found: dict[str, Any] = {}
    for key, prefix in zip(DEF_KEYS, DEF_PREFIXES, strict=True):
        defs = root.get(key)
        if isinstance(defs, dict):
            found.update({prefix + name: sub for name, sub in defs.items()})
    return found


def check_output_schema(schema: Any, where: str) -> None:
    """Refuse a structured-output schema outside the supported subset, naming the keyword at fault.

    A schema found valid is remembered by its canonical text: a job sends the same schema with every
    document, and checking it costs more than the rest of a request's validation.
    """
    if not isinstance(schema, dict):
        raise invalid(f"{where}: Field required")
    text = canonical_json(schema)
    if (where, text) in _VALID:
        _VALID.move_to_end((where, text))
        return
    _check_schema(schema, where)
    _VALID[(where, text)] = None
    if len(_VALID) > VALID_SCHEMAS_KEPT:
        _VALID.popitem(last=False)


def _check_schema(schema: dict[str, Any], where: str) -> None:
    for key in DEF_KEYS:
        if key in schema and not isinstance(schema[key], dict):
            raise invalid(f"{where}.{key}: Input should be a valid dictionary")
    defs = local_defs(schema)
    for target, sub in defs.items():
        _check_node(sub, f"{where}.{_pointer_path(target)}", defs)
    root = {k: v for k, v in schema.items() if k not in DEF_KEYS}
    _check_node(root, where, defs)
    reach: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for target in _check_not_recursive(defs, where):
        reach[target] = _deepest(defs[target], reach)
        sizes[target] = _expanded_size(defs[target], sizes)
    if _deepest(root, reach) > MAX_SCHEMA_DEPTH:
        raise invalid(f"{where}: Schema is too complex: nested deeper than {MAX_SCHEMA_DEPTH} levels")
    expanded = _expanded_size(root, sizes)
    if expanded > MAX_EXPANDED_NODES:
        raise invalid(
            f"{where}: Schema is too complex: {expanded} schema nodes once its $refs are expanded "
            f"(at most {MAX_EXPANDED_NODES})"
        )
    _check_complexity([root, *defs.values()], where)


def _check_complexity(schemas: list[dict[str, Any]], where: str) -> None:
    """Refuse more union-typed or optional parameters than the explicit limits allow (each definition counts once)."""
    unions = optional = 0
    for schema in schemas:
        for node in _nodes(schema):
            kind = node.get("type")
            unions += "anyOf" in node or (isinstance(kind, list) and len(kind) > 1)
            properties = node.get("properties")
            if isinstance(properties, dict):
                listed = node.get("required")
                required = {name for name in listed if isinstance(name, str)} if isinstance(listed, list) else set()
                optional += sum(name not in required for name in properties)
    if unions > MAX_UNION_PARAMS:
        raise invalid(
            f"{where}: Schemas contains too many parameters with union types ({unions} parameters with type arrays "
            f"or anyOf) which exceeds the limit: {MAX_UNION_PARAMS}"
        )
    if optional > MAX_OPTIONAL_PARAMS:
        raise invalid(
            f"{where}: Schemas contains too many optional parameters ({optional} parameters not listed in "
            f"'required') which exceeds the limit: {MAX_OPTIONAL_PARAMS}"
        )


def _pointer_path(target: str) -> str:
    """`#/$defs/Node` as the error path `$defs.Node`."""
    return target.removeprefix("#/").replace("/", ".", 1)


def _check_node(schema: Any, where: str, defs: dict[str, Any], depth: int = 0) -> None:
    if not isinstance(schema, dict):
        raise invalid(f"{where}: Input should be a valid dictionary")
    if depth > MAX_SCHEMA_DEPTH:
        raise invalid(f"{where}: Schema is too complex: nested deeper than {MAX_SCHEMA_DEPTH} levels")
    for key in schema:
        if key not in SCHEMA_KEYS:
            raise invalid(f"{where}: the JSON schema keyword '{key}' is not supported in structured outputs")
    if "$ref" in schema:
        _check_ref(schema["$ref"], where, defs)
    for variant_key in ("anyOf", "allOf"):
        if variant_key in schema:
            variants = schema[variant_key]
            _check_variants(variants, f"{where}.{variant_key}", defs, depth, refs_allowed=variant_key == "anyOf")
    if "enum" in schema:
        _check_enum(schema["enum"], f"{where}.enum")
    # A node whose value a `$ref`, enum, const or variants decide needs no type; whatever it also says
    # (a type, properties, items) is checked all the same, so nothing beside them passes unchecked.
    decided = any(key in schema for key in ("$ref", "enum", "const", "anyOf", "allOf"))
    kind = schema.get("type")
    if kind is None and decided:
        kind = [k for k, key in (("object", "properties"), ("array", "items")) if key in schema] or None
        if kind is None:
            return
    for each in _types(kind, f"{where}.type"):
        _check_typed(schema, each, where, defs, depth)


def _check_ref(ref: Any, where: str, defs: dict[str, Any]) -> None:
    if not isinstance(ref, str):
        raise invalid(f"{where}.$ref: Input should be a valid string")
    if ref == "#":
        raise invalid(f"{where}.$ref: recursive schemas are not supported ('#' refers to the root schema)")
    if not ref.startswith("#"):
        raise invalid(f"{where}.$ref: external references are not supported ({ref!r}); use '#/$defs/...'")
    if ref not in defs:
        raise invalid(f"{where}.$ref: unresolvable reference {ref!r}")


def _check_variants(variants: Any, where: str, defs: dict[str, Any], depth: int, *, refs_allowed: bool) -> None:
    if not isinstance(variants, list) or not variants:
        raise invalid(f"{where}: Input should be a non-empty list")
    for index, variant in enumerate(variants):
        if not refs_allowed and isinstance(variant, dict) and "$ref" in variant:
            raise invalid(f"{where}.{index}.$ref: allOf with $ref is not supported")
        _check_node(variant, f"{where}.{index}", defs, depth + 1)


def _check_enum(enum: Any, where: str) -> None:
    if not isinstance(enum, list) or not enum:
        raise invalid(f"{where}: Input should be a non-empty list")
    for index, value in enumerate(enum):
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise invalid(
                f"{where}.{index}: complex types within enums are not supported "
                "(enum values must be strings, numbers, booleans or null)"
            )


def _types(kind: Any, where: str) -> list[str]:
    """The node's types: one type name, or a type array of distinct names (a union, such as a nullable field)."""
    kinds = kind if isinstance(kind, list) else [kind]
    valid = all(isinstance(k, str) and k in SCHEMA_TYPES for k in kinds) and len(set(kinds)) == len(kinds) > 0
    if not valid:
        raise invalid(f"{where}: Input should be one of {', '.join(sorted(SCHEMA_TYPES))}, or a list of them")
    return kinds


def _check_typed(schema: dict[str, Any], kind: str, where: str, defs: dict[str, Any], depth: int) -> None:
    if kind == "object":
        if schema.get("additionalProperties") is not False:
            raise invalid(f"{where}: For 'object' type, 'additionalProperties' must be explicitly set to false")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise invalid(f"{where}.properties: Input should be a valid dictionary")
        for name, sub in properties.items():
            _check_node(sub, f"{where}.properties.{name}", defs, depth + 1)
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(name, str) and name in properties for name in required):
            raise invalid(f"{where}.required: every required property must be defined in 'properties'")
    elif kind == "array":
        if "items" in schema:
            _check_node(schema["items"], f"{where}.items", defs, depth + 1)
        min_items = schema.get("minItems", 0)
        if isinstance(min_items, bool) or min_items not in (0, 1):
            raise invalid(f"{where}.minItems: only 0 and 1 are supported")
    elif kind == "string":
        fmt = schema.get("format")
        if fmt is not None and (not isinstance(fmt, str) or fmt not in STRING_FORMATS):
            raise invalid(f"{where}.format: string format {fmt!r} is not supported")


def _subschema_refs(schema: Any, depth: int = 0) -> Iterator[tuple[str, int]]:
    """Each schema node under `schema` as (its `$ref` or "", its depth); data (`enum`, `const`) is not walked."""
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    yield (ref if isinstance(ref, str) else ""), depth
    for child in _children(schema):
        yield from _subschema_refs(child, depth + 1)


def _children(schema: dict[str, Any]) -> list[Any]:
    """The subschemas right under a node: its properties, items and variants."""
    properties = schema.get("properties")
    children = list(properties.values()) if isinstance(properties, dict) else []
    children.append(schema.get("items"))
    for key in ("anyOf", "allOf"):
        variants = schema.get(key)
        if isinstance(variants, list):
            children.extend(variants)
    return children


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema node under `schema`, itself included (the positions `_subschema_refs` walks)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for child in _children(schema):
        yield from _nodes(child)


def _deepest(schema: dict[str, Any], reach: dict[str, int]) -> int:
    """How deep `schema` nests once the `$ref`s in it are followed (`reach`: how deep each definition goes)."""
    return max(depth + reach.get(ref, 0) for ref, depth in _subschema_refs(schema))


def _expanded_size(schema: dict[str, Any], sizes: dict[str, int]) -> int:
    """How many schema nodes `schema` has once each `$ref` is replaced by its definition (`sizes`: theirs)."""
    return sum(sizes.get(ref, 1) for ref, _ in _subschema_refs(schema))


def _check_not_recursive(defs: dict[str, Any], where: str) -> list[str]:
    """Refuse a definition that reaches itself through `$ref`s: recursive schemas are not supported.

    Returns the definitions in an order where each comes after every definition it refers to.
    """
    edges = {target: [ref for ref, _ in _subschema_refs(sub) if ref in defs] for target, sub in defs.items()}
    done: list[str] = []
    finished: set[str] = set()
    for start in defs:
        if start in finished:
            continue
        path = [start]
        stack: list[Iterator[str]] = [iter(edges[start])]
        while stack:
            successor = next(stack[-1], None)
            if successor is None:
                stack.pop()
                finished.add(path[-1])
                done.append(path.pop())
            elif successor in path:
                cycle = [*path[path.index(successor) :], successor]
                raise invalid(
                    f"{where}.{_pointer_path(successor)}.$ref: recursive schemas are not supported "
                    f"($ref cycle: {' -> '.join(cycle)})"
                )
            elif successor not in finished:
                path.append(successor)
                stack.append(iter(edges[successor]))
    return done
