"""Loggers that carry room/peer context: bound once per object, never per packet.

`bind(logger, room="r1", peer="p7").info("joined")` logs "[room=r1 peer=p7] joined", and passes
the same fields as `extra` for structured handlers. Shared by signaling/ and sfu/.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any


class ContextLogger(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, logger: logging.Logger, extra: dict[str, object]) -> None:
        super().__init__(logger, extra)
        self.context = dict(extra)
        self.prefix = "[" + " ".join(f"{k}={v}" for k, v in extra.items()) + "] "

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**self.context, **kwargs.get("extra", {})}
        return f"{self.prefix}{msg}", kwargs


def bind(log: logging.Logger | ContextLogger, **ctx: object) -> ContextLogger:
    if isinstance(log, ContextLogger):
        return ContextLogger(log.logger, {**log.context, **ctx})
    return ContextLogger(log, ctx)
