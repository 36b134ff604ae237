"""docs/protocol.md and docs/protocol.schema.json must agree with signaling/protocol.py."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from signaling import protocol as p
from signaling.schema import render

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROTOCOL_MD = DOCS / "protocol.md"
SCHEMA_JSON = DOCS / "protocol.schema.json"

CLIENT_SECTION = "Client → server"
SERVER_SECTION = "Server → client"
DATA_SECTION = "Data channels"


@dataclass
class Example:
    section: str
    heading: str
    line: int
    text: str


def _tags(union: Any) -> dict[str, type[msgspec.Struct]]:
    return {cls.__struct_config__.tag: cls for cls in union.__args__}


CLIENT_TAGS = _tags(p.ClientMessage)
SERVER_TAGS = _tags(p.ServerMessage)


def _examples() -> list[Example]:
    examples: list[Example] = []
    section = heading = ""
    block: list[str] | None = None
    start = 0
    for number, line in enumerate(PROTOCOL_MD.read_text().splitlines(), 1):
        fence = line.strip()
        if block is not None:
            if fence == "```":
                examples.append(Example(section, heading, start, textwrap.dedent("\n".join(block))))
                block = None
            else:
                block.append(line)
        elif fence == "```json":
            block, start = [], number
        elif line.startswith("## "):
            section, heading = line[3:].strip(), ""
        elif line.startswith("### "):
            heading = line[4:].strip()
    assert block is None, f"unclosed ```json block at line {start}"
    return examples


EXAMPLES = _examples()


def _decode(example: Example) -> msgspec.Struct:
    if example.section == DATA_SECTION:  # a DataSend or a DataReceived, by its fields
        if '"sender"' in example.text:
            return p.decode_data_received(example.text)
        return p.decode_data(example.text)
    if example.section == CLIENT_SECTION:
        return p.decode_client(example.text)
    if example.section == SERVER_SECTION:
        return p.decode_server(example.text)
    try:  # examples elsewhere (negotiation rules) may be either direction
        return p.decode_client(example.text)
    except p.ProtocolError:
        return p.decode_server(example.text)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line}")
def test_every_example_decodes_into_its_struct(example: Example) -> None:
    msg = _decode(example)
    tags = {CLIENT_SECTION: CLIENT_TAGS, SERVER_SECTION: SERVER_TAGS}.get(example.section)
    if tags is None:
        return
    match = re.fullmatch(r"`(\w+)`", example.heading)
    assert match, f"line {example.line}: example outside a ### `type` heading"
    assert type(msg) is tags[match.group(1)], (
        f"line {example.line}: example under {example.heading} decodes to {type(msg).__name__}"
    )


@pytest.mark.parametrize(
    ("section", "tags"), [(CLIENT_SECTION, CLIENT_TAGS), (SERVER_SECTION, SERVER_TAGS)]
)
def test_every_message_type_is_documented_with_an_example(
    section: str, tags: dict[str, type[msgspec.Struct]]
) -> None:
    documented = {e.heading.strip("`") for e in EXAMPLES if e.section == section}
    missing = sorted(set(tags) - documented)
    assert not missing, f"{section}: no ### heading with an example for {missing}"
    extra = sorted(documented - set(tags))
    assert not extra, f"{section}: documented but not in the protocol: {extra}"


def test_every_error_code_is_documented() -> None:
    text = PROTOCOL_MD.read_text().split("\n## Error codes\n", 1)[-1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))
    missing = sorted(code.value for code in p.ErrorCode if code.value not in rows)
    assert not missing, f"error codes without a row in the table of docs/protocol.md: {missing}"


def test_schema_file_is_up_to_date() -> None:
    assert SCHEMA_JSON.read_text() == render(), (
        "docs/protocol.schema.json is stale: python -m signaling.schema > docs/protocol.schema.json"
    )
