"""web/protocol.d.ts must be what signaling.tstypes generates from the msgspec Structs."""

from __future__ import annotations

from pathlib import Path

from signaling.tstypes import render

PROTOCOL_D_TS = Path(__file__).resolve().parents[2] / "web" / "protocol.d.ts"


def test_typescript_declarations_are_up_to_date() -> None:
    assert PROTOCOL_D_TS.read_text() == render(), (
        "web/protocol.d.ts is stale: make tstypes (python -m signaling.tstypes > web/protocol.d.ts)"
    )


def test_every_message_type_is_declared() -> None:
    text = render()
    for name in ("ClientMessage", "ServerMessage"):
        assert f"export type {name} = " in text
    for tag in ("join", "offer", "answer", "candidate", "leave", "ping", "welcome", "pong"):
        assert f'type: "{tag}";' in text, tag
