"""Run `aiosfu` with every aiortc codec constructor reporting itself: the no-transcoding proof.

    python -m tests.codec_guard serve --port 8080 ...

Each encoder or decoder aiortc constructs (Vp8Decoder, OpusEncoder, ...) and each call of
`get_encoder` / `get_decoder` writes a line starting with MARKER to stderr. The server still
works as usual; a test reads the output after a call and expects no such line.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import aiortc.codecs
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.codecs import g711, g722, h264, opus, vpx
from aiortc.codecs.base import Decoder, Encoder

MARKER = "CODEC CREATED"
READY = "codec guard installed"


def _report(what: str) -> None:
    print(f"{MARKER}: {what}", file=sys.stderr, flush=True)


def _guard_call(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _report(name)
        return fn(*args, **kwargs)

    return wrapper


Restore = list[tuple[Any, str, Any]]


def install() -> Restore:
    """Wrap every codec class and factory aiortc has; returns how to undo it."""
    wrapped: Restore = []
    for module in (g711, g722, h264, opus, vpx):
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, Encoder | Decoder)
                and obj not in (Encoder, Decoder)
                and "__init__" in vars(obj)
            ):
                wrapped.append((obj, "__init__", vars(obj)["__init__"]))
                obj.__init__ = _guard_call(vars(obj)["__init__"], name)  # type: ignore[method-assign]
    for module, name in (
        (aiortc.codecs, "get_encoder"),
        (aiortc.codecs, "get_decoder"),
        (aiortc.rtcrtpsender, "get_encoder"),
        (aiortc.rtcrtpreceiver, "get_decoder"),
    ):
        wrapped.append((module, name, getattr(module, name)))
        setattr(module, name, _guard_call(getattr(module, name), name))
    return wrapped


def uninstall(wrapped: Restore) -> None:
    for obj, attr, original in reversed(wrapped):
        setattr(obj, attr, original)


def main() -> int:
    wrapped = install()
    names = sorted({getattr(obj, "__name__", "?") + "." + attr for obj, attr, _ in wrapped})
    print(f"{READY}: {', '.join(names)}", file=sys.stderr, flush=True)
    from sfu.cli import main as serve

    return serve(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
