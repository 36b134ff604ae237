"""Every hook into aiortc/aioice internals lives in this package, and nowhere else.

aiortc and aioice are pinned to exact versions in pyproject.toml; each module here has its own
test in tests/rtc/ so that an upgrade breaks loudly in one place. Callers get plain functions and
never touch a private attribute themselves.
"""

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"
