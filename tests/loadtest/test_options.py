"""loadtest.options: the benchmarks read one scenario the same way; nonsense gets a clear error."""

from __future__ import annotations

import pytest

from loadtest import forwarding, run, sidebyside
from loadtest.options import BenchConfig, VideoSpec

SCENARIO = [
    *("--subscribers", "10", "--subscribers", "50", "--duration", "7.5", "--warmup", "0"),
    *("--bitrate", "800000", "--fps", "25", "--width", "320", "--height", "240", "--no-pin"),
]


def test_both_benchmarks_read_the_scenario_into_the_same_config() -> None:
    bench, json_path = forwarding.parse_args([*SCENARIO, "--json", "-"])
    both, json_path_2 = sidebyside.parse_args([*SCENARIO, "--json", "-"])
    expected = BenchConfig(
        subscribers=[10, 50],
        duration=7.5,
        warmup=0.0,
        bitrate=800_000,
        fps=25,
        width=320,
        height=240,
        pin=False,
    )
    assert bench == both.bench == expected and json_path == json_path_2 == "-"
    assert expected.video == VideoSpec(320, 240, 25, 800)


def test_defaults_are_the_published_scenario() -> None:
    bench, json_path = forwarding.parse_args([])
    both, _ = sidebyside.parse_args([])
    assert bench.subscribers == [10, 25] and both.bench.subscribers == [10, 25, 50, 100]
    assert (bench.duration, bench.warmup, bench.video) == (20.0, 5.0, VideoSpec(640, 480, 30, 1000))
    assert both.bench.video == bench.video and bench.pin is None and json_path is None
    assert both.servers == ["aiosfu", "janus"] and both.janus.event_loops == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "argument --duration: must be > 0, not 0"),
        (["--duration", "soon"], "argument --duration: invalid float value: 'soon'"),
        (["--warmup", "-1"], "argument --warmup: must be >= 0, not -1"),
        (["--width", "641"], "unusable frame size 641x480"),
        (["--bitrate", "5000"], "fps 1-120 and kbps 10-50000, not 30/5"),
        (["--subscribers", "-1"], "N must be at least 0"),
    ],
)
def test_nonsense_is_refused_the_same_way_by_both(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for parse in (forwarding.parse_args, sidebyside.parse_args):
        with pytest.raises(SystemExit) as exit_info:
            parse(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        if parse is sidebyside.parse_args and "N must be" in message:
            message = "N must be at least 1"
        assert message in err, err


def test_zero_subscribers_measures_the_publisher_alone_but_not_side_by_side(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert forwarding.parse_args(["--subscribers", "0"])[0].subscribers == [0]
    with pytest.raises(SystemExit):
        sidebyside.parse_args(["--subscribers", "0"])
    assert "--subscribers: N must be at least 1" in capsys.readouterr().err


def test_the_load_test_shares_duration_and_json() -> None:
    config, json_path = run.parse_args(["--duration", "7.5", "--json", "-"])
    assert config.duration == 7.5 and json_path == "-"
    with pytest.raises(SystemExit):
        run.parse_args(["--duration", "0"])
