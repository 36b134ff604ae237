"""`python -m signaling.tstypes` prints web/protocol.d.ts: protocol v1 as TypeScript declarations.

Generated from the same JSON Schema as docs/protocol.schema.json (msgspec's, from the Structs in
signaling.protocol), so the browser library is type-checked against the types the server decodes
with; tests/signaling/test_tstypes.py fails when the committed file is stale. Limits that
TypeScript cannot express (lengths, the room pattern) are carried over as doc comments.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec

from signaling.protocol import ClientMessage, DataReceived, DataSend, ServerMessage

HEADER = """\
// Protocol v1 of the aiosfu signaling hub (GET /ws), generated from signaling/protocol.py.
// Do not edit: run `make tstypes` (python -m signaling.tstypes > web/protocol.d.ts).
// docs/protocol.md explains every message.
"""

Schema = dict[str, Any]


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: Schema) -> str:
    """The TypeScript type of one JSON Schema node (the subset msgspec emits)."""
    if not schema:  # any JSON value (msgspec.Raw)
        return "unknown"
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type(option) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        item = _type(schema["items"])
        return f"{item}[]" if item.isidentifier() else f"Array<{item}>"
    raise ValueError(f"no TypeScript type for schema {schema!r}")


def _limits(schema: Schema) -> list[str]:
    """Constraints TypeScript cannot check, as words for a doc comment."""
    found: list[str] = []
    for option in schema.get("anyOf", [schema]):
        if "minLength" in option and "maxLength" in option:
            found.append(f"{option['minLength']}-{option['maxLength']} characters")
        elif "maxLength" in option:
            found.append(f"at most {option['maxLength']} characters")
        if "pattern" in option:
            found.append(f"matching /{option['pattern']}/")
    return found


def _doc(lines: list[str], indent: str = "") -> list[str]:
    if not lines:
        return []
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}" for line in lines), f"{indent} */"]


def _declaration(name: str, schema: Schema) -> list[str]:
    doc = _doc([schema["description"]] if "description" in schema else [])
    if schema.get("type") != "object":
        return [*doc, f"export type {name} = {_type(schema)};"]
    required = set(schema.get("required", ()))
    body: list[str] = []
    for field, prop in schema["properties"].items():
        body += _doc(_limits(prop), "  ")
        optional = "" if field in required else "?"
        body.append(f"  {field}{optional}: {_type(prop)};")
    return [*doc, f"export interface {name} {{", *body, "}"]


def render() -> str:
    (client, server, _, _), defs = msgspec.json.schema_components(
        [ClientMessage, ServerMessage, DataSend, DataReceived], ref_template="#/$defs/{name}"
    )
    out = [HEADER]
    for name in sorted(defs):
        out += [*_declaration(name, defs[name]), ""]
    out += _doc(["What a client may send."])
    out += [f"export type ClientMessage = {_type(client)};", ""]
    out += _doc(["What the server sends."])
    out += [f"export type ServerMessage = {_type(server)};"]
    return "\n".join(out) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
