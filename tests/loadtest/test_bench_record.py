"""The recorder benchmark, small: 1 stream of each kind, 1 round, 1 s measured."""

from __future__ import annotations

import contextlib
import io
import os
import re

from loadtest.bench_record import run


async def test_the_recorder_benchmark_prints_its_figures() -> None:
    affinity = os.sched_getaffinity(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await run({"video": 1, "audio": 1}, warmup=1.0, duration=1.0, rounds=1, pin=None)
    assert os.sched_getaffinity(0) == affinity, "the bench process's affinity is restored"
    text = out.getvalue()
    print(text)
    for kind in ("video", "audio"):
        for role in ("reference", "recorder"):
            assert re.search(rf"^{kind} +x1 +{role} +CPU +[\d.]+ %", text, re.MULTILINE), text
        summary = re.search(rf"^{kind}: recorder ([\d.]+) % of a core per stream", text, re.M)
        assert summary and float(summary.group(1)) > 0, text
