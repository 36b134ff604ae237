"""`python -m signaling.schema` prints the JSON Schema of protocol v1 (docs/protocol.schema.json).

One document for both directions: `$defs.ClientMessage` is what a client may send,
`$defs.ServerMessage` what the server sends; `$defs.DataSend` and `$defs.DataReceived` are the
messages of the data channels. Keys are sorted so the output is stable to diff.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec

from signaling.protocol import ClientMessage, DataReceived, DataSend, ServerMessage


def generate() -> dict[str, Any]:
    (client, server, _, _), defs = msgspec.json.schema_components(
        [ClientMessage, ServerMessage, DataSend, DataReceived], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "aiosfu signaling protocol v1",
        "description": "JSON text frames on GET /ws; see docs/protocol.md.",
        "$defs": {**defs, "ClientMessage": client, "ServerMessage": server},
        "anyOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
    }


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
