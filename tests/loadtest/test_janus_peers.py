"""The Janus side of the side-by-side benchmark.

The live test runs `python -m loadtest.sidebyside --servers janus` with 1 publisher and
1 subscriber for a few seconds: it re-executes itself in a network namespace of its own (nested
in the one `make test` uses), starts Debian's Janus there with the generated configuration, and
drives it with aiortc peers over the Janus WebSocket API. It is skipped where Janus is not
installed (`make bench` installs it) or where no namespace can be made (not root).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest import netns
from loadtest.forwarding import Result
from loadtest.janus import JanusSettings, config_files, janus_binary
from loadtest.serverproc import REPO_ROOT
from loadtest.sidebyside import LOSS_LIMIT_PCT, capacity


def test_configuration_is_loopback_only_with_two_event_loops(tmp_path: Path) -> None:
    files = config_files(JanusSettings(), tmp_path)
    core = files["janus.jcfg"]
    assert "event_loops = 2" in core
    assert "ignore_mdns = true" in core and "ipv6 = false" in core
    assert 'rtp_port_range = "20000-40000"' in core
    for setting in ("stun_server", "turn_server", "nat_1_1", "turn_rest_api", "ice_enforce"):
        assert setting not in core, f"{setting}: Janus must contact nothing"
    assert f'plugins_folder = "{tmp_path / "plugins"}"' in core, "only our symlinked plugin"
    websockets = files["janus.transport.websockets.jcfg"]
    assert 'ws_ip = "127.0.0.1"' in websockets and "ws_port = 8188" in websockets
    assert "wss = false" in websockets and "admin_ws = false" in websockets
    assert "fir_freq = 0" in files["janus.plugin.videoroom.jcfg"]


def _result(n: int, us: float, pps_per_sub: float, loss: float, short: float = 0) -> Result:
    values: dict[str, Any] = {f.name: 0 for f in dataclasses.fields(Result)}
    values.update(subscribers=n, us_per_packet=us, forwarded_pps=n * pps_per_sub, loss_pct=loss)
    values.update(frame_shortfall_pct=short)
    return Result(**values)


def test_capacity_is_a_lower_bound_and_a_labelled_extrapolation() -> None:
    rows = [_result(10, 40.0, 110, 0.0), _result(25, 25.0, 110, 0.2), _result(50, 20.0, 110, 3)]
    c = capacity(rows)
    assert c.measured_n == 25, f"the largest N below {LOSS_LIMIT_PCT} % loss"
    assert c.from_n == 50 and c.us_per_packet == 20.0
    assert c.extrapolated_n == pytest.approx(1e6 / (20.0 * 110))
    assert capacity([_result(10, 40.0, 110, 5.0)]).measured_n is None
    # Frames dropped whole at the server leave no sequence gap: they count as loss too.
    assert capacity([_result(10, 40.0, 110, 0.0, short=6.0)]).measured_n is None


@pytest.mark.skipif(janus_binary() is None, reason="janus is not installed (make bench does)")
@pytest.mark.skipif(netns.can_make_namespace() is not None, reason="needs root for a namespace")
def test_one_publisher_one_subscriber_through_janus(tmp_path: Path) -> None:
    out = tmp_path / "janus.json"
    argv = ["--servers", "janus", "--subscribers", "1", "--duration", "2", "--warmup", "1"]
    argv += ["--quiet-timeout", "0"]  # a smoke test: never wait for a quiet machine
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.sidebyside", *argv, "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no route out: checked" in done.stdout
    report = json.loads(out.read_text())
    assert "event_loops = 2" in report["janus_config"]
    [row] = report["results"]["janus"]
    affinity = sorted(os.sched_getaffinity(0))
    if len(affinity) >= 2:  # pinned by default: Janus on the lowest CPU, the clients elsewhere
        pinning = {"server_cpus": affinity[:1], "bench_cpus": affinity[1:]}
        assert report["environment"]["pinning"] == pinning
        assert row["server_cpus"] == affinity[:1]
        assert f"server pinned to CPU {affinity[0]}" in done.stdout
    assert row["subscribers"] == 1 and row["subscribers_with_frames"] == 1
    assert row["forwarded_pps"] > 50, "~1 Mbps of VP8 is ~100 RTP packets/s"
    assert row["fps_per_subscriber"] > 20
    assert row["loss_pct"] < 5
    assert 0 < row["join_p95_s"] < 5
    assert row["us_per_packet"] > 0 and row["rss_per_subscriber_kb"] is not None
    assert "Janus 1." in done.stdout and "| 1 |" in done.stdout, "the report's table"
