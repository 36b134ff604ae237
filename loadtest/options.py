"""What the harnesses are asked to do, and the command-line options they share.

`aiosfu loadtest` (loadtest.run) fills a `LoadConfig`; `python -m loadtest.forwarding` and
`python -m loadtest.sidebyside` (make bench) fill a `BenchConfig` from the same scenario options
(`add_bench_arguments`, `bench_config`). An option two of them have (`--duration`, `--json`,
`--pin`, a frame size) is declared here once: the same name, default, check and message in each.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from . import procstat


@dataclass(frozen=True)
class VideoSpec:
    width: int = 640
    height: int = 360
    fps: int = 30
    kbps: int = 500

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps}:{self.kbps}"


@dataclass
class LoadConfig:
    """`aiosfu loadtest`: rooms of synthetic peers (loadtest.run)."""

    url: str | None = None
    rooms: int = 1
    publishers: int = 1
    subscribers: int = 4
    video: VideoSpec = field(default_factory=VideoSpec)
    audio: bool = False
    duration: float = 20.0
    ramp: float = 5.0
    settle: float = 2.0
    procs: int = 1
    join_timeout: float = 20.0
    server_pid: int | None = None
    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    progress: bool = True
    # Publishers send l, m, h (the --video size and bitrate for h; see loadtest.peers), and
    # subscribers ask for `layer`: l, m, h, auto, or mixed (subscriber j gets l, m, h, l...).
    simulcast: bool = False
    layer: str = "auto"


@dataclass
class BenchConfig:
    """The forwarding benchmark's scenario: 1 publisher, N subscribers, one N after the other."""

    subscribers: list[int] = field(default_factory=lambda: [10, 25])
    duration: float = 20.0
    warmup: float = 5.0
    bitrate: int = 1_000_000
    fps: int = 30
    width: int = 640
    height: int = 480
    clip_frames: int = 90
    # The publisher sends three layers, l, m, h (h is the clip above; m and l at 1/2 and 1/4
    # the size, 1/3 and 1/10 the bitrate), and subscriber i receives layer i mod 3: l, m, h...
    simulcast: bool = False
    first_frame_timeout: float = 30.0
    verbose: bool = True  # print progress lines
    # The server on one CPU, this process on the others: True, False or None (when this process
    # may use at least 2 CPUs). See loadtest.procstat.plan_pinning.
    pin: bool | None = None

    @property
    def video(self) -> VideoSpec:
        return VideoSpec(self.width, self.height, self.fps, self.bitrate // 1000)


# --- values ----------------------------------------------------------------------------------


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def check(text: str) -> int | float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value

    check.__name__ = kind.__name__  # argparse's "invalid float value: 'x'"
    return check


def non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def check(text: str) -> int | float:
        value = kind(text)
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
        return value

    check.__name__ = kind.__name__
    return check


def check_video(spec: VideoSpec) -> VideoSpec:
    """A frame size, rate and bitrate the clip encoder can make; ArgumentTypeError otherwise."""
    if not (16 <= spec.width <= 4096 and 16 <= spec.height <= 4096) or spec.width % 2:
        raise argparse.ArgumentTypeError(f"unusable frame size {spec.width}x{spec.height}")
    if not (1 <= spec.fps <= 120 and 10 <= spec.kbps <= 50_000):
        raise argparse.ArgumentTypeError(f"fps 1-120 and kbps 10-50000, not {spec.fps}/{spec.kbps}")
    return spec


def parse_video(text: str) -> VideoSpec:
    match = re.fullmatch(r"(\d+)x(\d+)(?:@(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"expected WxH@fps:kbps (e.g. 640x360@30:500), not {text!r}"
        )
    w, h, fps, kbps = match.groups()
    return check_video(VideoSpec(int(w), int(h), int(fps or 30), int(kbps or 500)))


# --- options more than one harness has ------------------------------------------------------


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A harness's parser: its module docstring as the help, laid out as written."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_duration(parser: argparse.ArgumentParser, default: float = 20.0) -> None:
    parser.add_argument(
        "--duration", type=positive(float), default=default, help="measured seconds"
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", metavar="PATH", help="write the JSON report there (- : stdout, after the table)"
    )


def add_pin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the server (all its threads) on one CPU, the lowest this process may use, and "
        "the clients on the others (default: pin when this process may use 2 CPUs or more)",
    )


def check_pin(parser: argparse.ArgumentParser, pin: bool | None) -> None:
    try:
        procstat.plan_pinning(pin)
    except ValueError as exc:
        parser.error(f"--pin: {exc}")


def add_bench_arguments(
    parser: argparse.ArgumentParser, *, default_subscribers: list[int], least: int
) -> None:
    """The forwarding benchmark's scenario, for loadtest.forwarding and loadtest.sidebyside."""
    parser.add_argument(
        "--subscribers",
        type=int,
        action="append",
        metavar="N",
        help=f"N (repeat for several runs; default {' '.join(map(str, default_subscribers))}"
        + ("; 0 measures the publisher alone)" if least == 0 else ")"),
    )
    add_duration(parser)
    parser.add_argument(
        "--warmup", type=non_negative(float), default=5.0, help="seconds before measuring"
    )
    parser.add_argument("--bitrate", type=positive(int), default=1_000_000, help="publisher bit/s")
    parser.add_argument("--fps", type=positive(int), default=30)
    parser.add_argument("--width", type=positive(int), default=640)
    parser.add_argument("--height", type=positive(int), default=480)
    parser.add_argument(
        "--simulcast",
        action="store_true",
        help="the publisher sends l, m, h (the clip, and 1/2 and 1/4 its size at 1/3 and 1/10 "
        "its bitrate); subscribers take l, m, h in turn",
    )
    add_pin(parser)
    add_json(parser)


def bench_config(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    *,
    default_subscribers: list[int],
    least: int,
) -> BenchConfig:
    """The BenchConfig of arguments add_bench_arguments declared; parser.error on nonsense."""
    check_pin(parser, args.pin)
    if any(n < least for n in args.subscribers or []):
        parser.error(f"--subscribers: N must be at least {least}")
    config = BenchConfig(
        subscribers=args.subscribers or list(default_subscribers),
        duration=args.duration,
        warmup=args.warmup,
        bitrate=args.bitrate,
        fps=args.fps,
        width=args.width,
        height=args.height,
        pin=args.pin,
        simulcast=args.simulcast,
    )
    try:
        check_video(config.video)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--width/--height/--fps/--bitrate: {exc}")
    return config
