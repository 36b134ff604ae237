"""Hypothesis strategies for broken client frames, generated from docs/protocol.schema.json.

`client_messages` are valid messages, drawn from the schema of `$defs.ClientMessage`; `frames`
breaks them the ways a fuzzer (or an attacker) would: wrong types, missing and extra fields,
huge and unicode strings, deep nesting, random bytes, garbage SDP and candidates. A frame is the
text or bytes sent as one WebSocket frame.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SCHEMA: dict[str, Any] = json.loads((ROOT / "docs" / "protocol.schema.json").read_text())
DEFS: dict[str, Any] = SCHEMA["$defs"]
FIXTURES = sorted((ROOT / "tests" / "fixtures").glob("*offer.sdp"))
OFFER_LINES = [path.read_text().replace("\r\n", "\n").strip().split("\n") for path in FIXTURES]
NEST = "\u0000nest\u0000"  # replaced by deeply nested JSON once the frame is text

Frame = str | bytes
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that validate against one JSON Schema node (the subset msgspec emits)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return st.deferred(lambda: from_schema(DEFS[name]))
    if "anyOf" in node:
        return st.one_of([from_schema(option) for option in node["anyOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True).filter(
                lambda s: node.get("minLength", 0) <= len(s) <= node.get("maxLength", 1 << 20)
            )
        return st.text(
            min_size=node.get("minLength", 0), max_size=min(node.get("maxLength", 40), 40)
        )
    if kind == "integer":
        return st.integers(node.get("minimum"), node.get("maximum"))
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "object":
        properties: dict[str, Any] = node["properties"]
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required},
        )
    raise AssertionError(f"no strategy for schema node {node}")


client_messages: st.SearchStrategy[dict[str, Any]] = from_schema(DEFS["ClientMessage"])


def _sections(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line indexes of each m-section."""
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    return list(zip(starts, [*starts[1:], len(lines)], strict=False))


@st.composite
def garbage_sdp(draw: st.DrawFn) -> str:
    """A real browser offer, mutated a few times, line by line and section by section: what a
    fuzzer that found aiortc crashes did (repeated mids, sections without a direction, BUNDLE
    groups naming no section...)."""
    lines = list(draw(st.sampled_from(OFFER_LINES)))
    pool = [line for offer in OFFER_LINES for line in offer]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        sections = _sections(lines)
        op = draw(st.integers(0, 9))
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        elif op == 2:
            lines.insert(i, draw(st.sampled_from(pool)))
        elif op == 3:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 4:
            lines[i] = lines[i][:2] + draw(st.text(max_size=30))
        elif op == 5 and sections:  # a whole m-section twice
            start, end = draw(st.sampled_from(sections))
            lines[end:end] = lines[start:end]
        elif op == 6 and sections:  # or gone
            start, end = draw(st.sampled_from(sections))
            del lines[start:end]
        elif op == 7:  # a mid renamed
            mids = [k for k, line in enumerate(lines) if line.startswith("a=mid:")]
            if mids:
                lines[draw(st.sampled_from(mids))] = f"a=mid:{draw(st.integers(0, 3))}"
        elif op == 8:  # the BUNDLE group rewritten
            group = " ".join(str(m) for m in draw(st.lists(st.integers(0, 3), max_size=4)))
            lines = [f"a=group:BUNDLE {group}" if x.startswith("a=group:") else x for x in lines]
        elif op == 9:  # a direction line dropped or changed
            directions = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
            found = [k for k, line in enumerate(lines) if line in directions]
            if found:
                k = draw(st.sampled_from(found))
                choice = draw(st.sampled_from([*directions, None]))
                if choice is None:
                    del lines[k]
                else:
                    lines[k] = choice
    return "\r\n".join(lines) + "\r\n"


candidate_lines = st.lists(
    st.sampled_from(
        [
            "candidate:1",
            "1",
            "2",
            "udp",
            "tcp",
            "typ",
            "host",
            "srflx",
            "relay",
            "raddr",
            "rport",
            "127.0.0.1",
            "::1",
            "192.0.2.1",
            "65535",
            "99999",
            "-1",
            "generation",
            "0",
            "tcptype",
        ]
    )
    | st.text(max_size=8),
    max_size=14,
).map(" ".join)


def _set_path(message: dict[str, Any], value: Any, draw: st.DrawFn) -> dict[str, Any]:
    """The message with one of its fields (or a nested candidate's) set to value."""
    broken: dict[str, Any] = json.loads(json.dumps(message))
    target = broken
    if isinstance(broken.get("candidate"), dict) and draw(st.booleans()):
        target = broken["candidate"]
    keys = sorted(target) or ["type"]
    target[draw(st.sampled_from([*keys, "extra"]))] = value
    return broken


@st.composite
def broken_messages(draw: st.DrawFn) -> Frame:
    message = draw(client_messages)
    how = draw(
        st.sampled_from(
            [
                "valid",
                "wrong type",
                "missing",
                "huge",
                "unicode",
                "nested",
                "extra",
                "unknown type",
                "garbage sdp",
                "garbage candidate",
            ]
        )
    )
    if how == "wrong type":
        message = _set_path(message, draw(JSON), draw)
    elif how == "missing":
        message.pop(draw(st.sampled_from(sorted(message))))
    elif how == "huge":
        size = draw(st.sampled_from([65, 1025, 4097, 70_000, 204_801, 270_000]))
        char = draw(st.sampled_from("xé🎥"))
        if char != "x":  # \u-escaped in JSON: kept under aiohttp's 1 MiB, which closes the socket
            size = min(size, 80_000)
        message = _set_path(message, char * size, draw)
    elif how == "unicode":
        strings = st.text(
            st.characters(codec="utf-8")
            | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
            max_size=30,
        )
        message = _set_path(message, draw(strings), draw)
    elif how == "nested":
        message = _set_path(message, NEST, draw)
    elif how == "extra":
        message = {**message, **draw(st.dictionaries(st.text(max_size=8), JSON, max_size=3))}
    elif how == "unknown type":
        message["type"] = draw(st.text(max_size=12) | st.sampled_from(["welcome", "pong", "JOIN"]))
    elif how == "garbage sdp":
        message = {"type": draw(st.sampled_from(["offer", "answer"])), "sdp": draw(garbage_sdp())}
    elif how == "garbage candidate":
        candidate = {
            "candidate": draw(candidate_lines),
            "sdpMid": draw(st.none() | st.text(max_size=3)),
        }
        message = {"type": "candidate", "candidate": candidate}
    text = json.dumps(message)
    if json.dumps(NEST) in text:
        depth = draw(st.integers(10, 5000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        text = text.replace(json.dumps(NEST), opener * depth + "1" + closer * depth)
    return text


frames: st.SearchStrategy[Frame] = (
    broken_messages()
    | st.binary(max_size=300)
    | st.text(max_size=300)
    | st.sampled_from(["", "null", "[]", "{}", '{"type": null}', "1e999", '"join"'])
)


# --- datagrams to the media ports ----------------------------------------------------------------

STUN_COOKIE = 0x2112A442


@st.composite
def stun(draw: st.DrawFn) -> bytes:
    """A STUN message (request, response, error, indication) with random attributes, its length
    field true or not, cut short or not."""
    kind = draw(st.sampled_from([0x0001, 0x0101, 0x0111, 0x0011, 0x0003, 0x0004]))
    attrs = b""
    for _ in range(draw(st.integers(0, 5))):
        # USERNAME, MESSAGE-INTEGRITY, ERROR-CODE, XOR-MAPPED-ADDRESS, PRIORITY, USE-CANDIDATE,
        # ICE-CONTROLLED/CONTROLLING, FINGERPRINT, or anything.
        kind_ = draw(
            st.sampled_from(
                [0x0006, 0x0008, 0x0009, 0x0020, 0x0024, 0x0025, 0x8029, 0x802A, 0x8028]
            )
            | st.integers(0, 0xFFFF)
        )
        size = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 12, 20, 32]))  # short ones break parsers
        value = draw(st.binary(min_size=size, max_size=size))
        length = draw(st.sampled_from([len(value), len(value) + 4, 0xFFFF]))
        attrs += struct.pack("!HH", kind_, length) + value + bytes(-len(value) % 4)
    length = draw(st.sampled_from([len(attrs), len(attrs) + 8, 0, 0xFFFF]))
    message = struct.pack("!HHI", kind, length, STUN_COOKIE) + draw(
        st.binary(min_size=12, max_size=12)
    )
    message += attrs
    return message[: draw(st.integers(0, len(message)))] if draw(st.booleans()) else message


@st.composite
def dtls_record(draw: st.DrawFn) -> bytes:
    """DTLS records (handshake, alert, change cipher spec, application data) of garbage."""
    content = draw(st.sampled_from([20, 21, 22, 23, 24, 63]))
    version = draw(st.sampled_from([b"\xfe\xfd", b"\xfe\xff", b"\x03\x03", b"\x00\x00"]))
    epoch = draw(st.integers(0, 3)).to_bytes(2, "big")
    sequence = draw(st.integers(0, (1 << 48) - 1)).to_bytes(6, "big")
    body = draw(st.binary(max_size=200))
    length = draw(st.sampled_from([len(body), len(body) + 10, 0, 0xFFFF]))
    record = bytes([content]) + version + epoch + sequence + length.to_bytes(2, "big") + body
    return record[: draw(st.integers(1, len(record)))] if draw(st.booleans()) else record


@st.composite
def srtp(draw: st.DrawFn) -> bytes:
    """SRTP and SRTCP-looking packets that cannot authenticate, of every size up to a jumbo."""
    first = draw(st.integers(0x80, 0xBF))
    payload_type = draw(st.integers(0, 127) | st.integers(192, 223))  # media, or RTCP
    header = struct.pack(
        "!BBHII",
        first,
        payload_type,
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
    )
    size = draw(st.sampled_from([0, 1, 10, 100, 1200, 1500, 1600, 4000]))
    pattern = draw(st.binary(min_size=1, max_size=64))
    return header + (pattern * (size // len(pattern) + 1))[:size]


datagrams: st.SearchStrategy[bytes] = (
    st.binary(max_size=1500) | st.just(b"") | stun() | dtls_record() | srtp()
)
