"""`aiosfu loadtest`'s report: figures from the peers' results, a table for people, JSON for tools
(both written by loadtest.report).

Join time is WebSocket connect -> first remote frame, for peers that had someone to receive
from when they joined. Frame rate, loss and bytes are counted in the measured window only;
keyframes, timestamp gaps and the longest freeze over the whole run (from a stream's first
frame to the end of the window, so a stream that stopped counts as one long freeze).
Percentiles are loadtest.stats's (nearest-rank), as in the benchmarks. The server's CPU per
forwarded packet is the benchmarks' figure: its CPU time in the window over the RTP packets
(media and retransmissions) every receiver got in the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from .options import LoadConfig
from .peers import PeerResult, StreamResult, WorkerOutcome
from .report import environment, environment_line, ms, num
from .stats import percentile, summary


@dataclass
class ServerFigures:
    pid: int | None = None
    cpu_seconds: float | None = None  # in the measured window
    cpu_pct: float | None = None  # of one core
    rss_mb: float | None = None  # at the end of the window
    rss_peak_mb: float | None = None  # highest sample, once a second
    # From the server's GET /metrics at the window's ends, when it answered.
    forwarded_pps: float | None = None
    forwarded_mbps: float | None = None
    us_per_packet: float | None = None  # build_report's: CPU over what the receivers got


def _stream_loss(streams: Iterable[StreamResult]) -> tuple[int, int]:
    expected = sum(s.rtp_expected for s in streams)
    received = sum(s.rtp_received for s in streams)
    return max(0, expected - received), expected


def us_per_packet(cpu_seconds: float | None, streams: Iterable[StreamResult]) -> float | None:
    """Server CPU µs per RTP packet (media + RTX) the receivers got: the benchmarks' figure."""
    packets = sum(s.rtp_received + s.rtx_received for s in streams)
    if cpu_seconds is None or not packets:
        return None
    return round(cpu_seconds / packets * 1e6, 2)


def build_report(
    config: LoadConfig,
    outcomes: Sequence[WorkerOutcome],
    server: ServerFigures,
    *,
    url: str,
    window: float,
    env: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the table shows, as plain JSON-able data (`env`: report.environment())."""
    results = sorted((r for o in outcomes for r in o.peers), key=lambda r: r.index)
    streams = [s for r in results for s in r.streams]
    video = [s for s in streams if s.kind == "video"]
    audio = [s for s in streams if s.kind == "audio"]
    lost, expected = _stream_loss(streams)
    failures = [{"name": r.name, "room": r.room, "error": r.error} for r in results if r.error]
    join_times = [r.join_time for r in results if r.expects_media and r.join_time is not None]
    receivers = []
    for r in results:
        if not r.expects_media:
            continue
        vs = [s for s in r.streams if s.kind == "video"]
        r_lost, r_expected = _stream_loss(r.streams)
        receivers.append(
            {
                "name": r.name,
                "room": r.room,
                "role": r.role,
                "peer_id": r.peer_id,
                "error": r.error,
                "join_ms": None if r.join_time is None else round(r.join_time * 1000, 1),
                "video_streams": len(vs),
                "video_fps": [round(s.fps, 2) for s in vs],
                "video_layers": [s.layer for s in vs],  # simulcast: what each one got last
                "video_frames": sum(s.frames for s in vs),
                "loss_pct": round(100 * r_lost / r_expected, 3) if r_expected else 0.0,
                "longest_freeze_ms": round(
                    1000 * max((s.longest_freeze for s in vs), default=0.0), 1
                ),
            }
        )
    bytes_in = sum(s.bytes for s in streams)
    sent_fps = [
        r.window_video_frames_sent / window for r in results if r.role == "publisher" and window > 0
    ]
    generator = {
        "worker_cpu_pct": [o.cpu_pct for o in outcomes],
        "publisher_fps": summary(sent_fps),
    }
    warnings = []
    if any(o.cpu_pct > 90 for o in outcomes) or (
        sent_fps and min(sent_fps) < 0.95 * config.video.fps
    ):
        warnings.append(
            "the load generator is short of CPU (a worker near 100 % of a core, or publishers "
            "behind their frame rate): frame rates and join times show its limits, not only "
            "the server's; use more --procs or fewer peers"
        )
    return {
        "config": {**asdict(config), "video": str(config.video), "url": url},
        "environment": env if env is not None else environment(),
        "window_s": round(window, 3),
        "peers": {
            "planned": len(results),
            "up": sum(r.error is None for r in results),
            "failed": len(failures),
            "failures": failures,
        },
        "join_time_ms": summary(join_times, 1000),
        "video": {
            "streams": len(video),
            "target_fps": config.video.fps,
            "fps": summary([s.fps for s in video]),
            "longest_freeze_ms": summary([s.longest_freeze for s in video], 1000),
            "frame_gaps": sum(s.frame_gaps for s in video),
            "keyframes": sum(s.keyframes for s in video),
        },
        "audio": {
            "streams": len(audio),
            "packet_rate": summary([s.fps for s in audio]),
        },
        "loss": {
            "pct": round(100 * lost / expected, 3) if expected else 0.0,
            "lost_packets": lost,
            "expected_packets": expected,
        },
        "traffic": {
            "in_mbps": round(bytes_in * 8 / window / 1e6, 3) if window > 0 else 0.0,
            "out_mbps": round(
                sum(r.window_bytes_sent for r in results) * 8 / window / 1e6 if window > 0 else 0.0,
                3,
            ),
        },
        "server": asdict(replace(server, us_per_packet=us_per_packet(server.cpu_seconds, streams))),
        "load_generator": generator,
        "receivers": receivers,
        "problems": problems(results),
        "warnings": warnings,
    }


def problems(results: Sequence[PeerResult]) -> list[str]:
    """What makes the run a failure: a peer not up, or a receiver that got nothing measured."""
    found = [f"{r.name} ({r.room}): {r.error}" for r in results if r.error]
    for r in results:
        if r.expects_media and r.error is None:
            if not r.streams:
                found.append(f"{r.name} ({r.room}): no remote track")
            elif not any(s.frames for s in r.streams if s.kind == "video") and any(
                s.kind == "video" for s in r.streams
            ):
                found.append(f"{r.name} ({r.room}): no video frame in the measured window")
    return found


def format_table(report: dict[str, Any]) -> str:
    config = report["config"]
    peers, join, video = report["peers"], report["join_time_ms"], report["video"]
    audio, loss, traffic, server = (
        report["audio"],
        report["loss"],
        report["traffic"],
        report["server"],
    )
    per_room = config["publishers"] + config["subscribers"]
    lines = [
        f"aiosfu loadtest: {config['rooms']} rooms x {per_room} peers "
        f"({config['publishers']} publishing {config['video']}"
        f"{' as simulcast l/m/h' if config.get('simulcast') else ''}"
        f"{' + audio' if config['audio'] else ''}, {config['subscribers']} receiving only"
        f"{', layer ' + config['layer'] if config.get('simulcast') else ''}), "
        f"{report['window_s']:g} s measured, {config['procs']} process(es), {config['url']}",
        "",
        f"{'peers':<16} {peers['up']} of {peers['planned']} up, {peers['failed']} failed",
        f"{'join time':<16} p50 {ms(join['p50'])}  p95 {ms(join['p95'])}  "
        f"p99 {ms(join['p99'])}  max {ms(join['max'])}  ({join['n']} peers)",
        f"{'video fps':<16} mean {num(video['fps']['mean'])}  p50 {num(video['fps']['p50'])}  "
        f"min {num(video['fps']['min'])}  target {video['target_fps']}  "
        f"({video['streams']} streams)",
        f"{'longest freeze':<16} p50 {ms(video['longest_freeze_ms']['p50'])}  "
        f"p95 {ms(video['longest_freeze_ms']['p95'])}  "
        f"max {ms(video['longest_freeze_ms']['max'])}",
        f"{'frames':<16} {video['keyframes']} keyframes, {video['frame_gaps']} timestamp gaps",
    ]
    if audio["streams"]:
        lines.append(
            f"{'audio pkt/s':<16} mean {num(audio['packet_rate']['mean'])}  "
            f"min {num(audio['packet_rate']['min'])}  ({audio['streams']} streams)"
        )
    lines += [
        f"{'loss':<16} {loss['pct']:.2f} % ({loss['lost_packets']} of "
        f"{loss['expected_packets']} packets)",
        f"{'traffic':<16} in {traffic['in_mbps']:.2f} Mbps, out {traffic['out_mbps']:.2f} Mbps "
        "(media payload, all peers)",
    ]
    if server["pid"] is not None:
        per_packet = server["us_per_packet"]
        lines.append(
            f"{'server':<16} CPU {num(server['cpu_pct'])} % of a core"
            + ("" if per_packet is None else f" = {per_packet:.1f} µs per forwarded packet")
            + f", RSS "
            f"{num(server['rss_mb'], 0)} MB (peak {num(server['rss_peak_mb'], 0)}), "
            f"pid {server['pid']}"
        )
    else:
        lines.append(f"{'server':<16} CPU and RSS not measured (give --server-pid)")
    if server["forwarded_pps"] is not None:
        lines.append(
            f"{'server /metrics':<16} forwarded {server['forwarded_pps']:.0f} pkt/s, "
            f"{server['forwarded_mbps']:.2f} Mbps"
        )
    generator = report["load_generator"]
    lines.append(
        f"{'load generator':<16} worker CPU "
        f"{', '.join(f'{c:.0f}' for c in generator['worker_cpu_pct'])} % of a core; "
        f"publishers sent {num(generator['publisher_fps']['mean'])} fps "
        f"(min {num(generator['publisher_fps']['min'])})"
    )
    lines += ["", _room_table(report)]
    lines += [f"warning: {w}" for w in report["warnings"]]
    if report["problems"]:
        lines += ["", "problems:", *(f"  {p}" for p in report["problems"][:20])]
        if len(report["problems"]) > 20:
            lines.append(f"  ... and {len(report['problems']) - 20} more")
    env = report["environment"]
    lines += ["", environment_line(env)]
    return "\n".join(lines)


def _room_table(report: dict[str, Any]) -> str:
    rooms: dict[str, list[dict[str, Any]]] = {}
    for r in report["receivers"]:
        rooms.setdefault(r["room"], []).append(r)
    header = (
        f"{'room':<20} {'receivers':>9} {'up':>4} {'join p95':>9} {'fps mean':>9} "
        f"{'fps min':>8} {'loss max %':>10} {'freeze max':>11}"
    )
    rows = [header]
    for room, receivers in sorted(rooms.items()):
        fps = [f for r in receivers for f in r["video_fps"]]
        joins = [r["join_ms"] for r in receivers if r["join_ms"] is not None]
        p95 = percentile(joins, 95)
        rows.append(
            f"{room:<20} {len(receivers):>9} {sum(r['error'] is None for r in receivers):>4} "
            f"{'-' if math.isnan(p95) else f'{p95:.0f} ms':>9} "
            f"{num(sum(fps) / len(fps) if fps else None):>9} "
            f"{num(min(fps) if fps else None):>8} "
            f"{max((r['loss_pct'] for r in receivers), default=0.0):>10.2f} "
            f"{max((r['longest_freeze_ms'] for r in receivers), default=0.0):>8.0f} ms"
        )
    return "\n".join(rows)
