"""Recording a three-party call: two Python publishers with sync marks (processes of their
own) and one Chromium page (fake camera and microphone), recorded by `aiosfu record` as its own
process; the files are checked with PyAV and played back in Chromium. The page shows a
"recording" badge meanwhile."""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.async_api import Browser

from loadtest.recorderproc import RecorderProcess
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.browser.roompage import RoomPage
from tests.browser.test_simulcast import three_distinct_layers
from tests.record.publisher import PublisherProcess
from tests.record.test_container import read
from tests.record.test_recorder import check_file, files_in, recording, span
from tests.util import eventually, eventually_async

RECORD_SECONDS = 10.0

# Frames the page's video sent so far and their width, by encoding (one, or l/m/h with
# simulcast): which encoding is the largest may change while the test runs (a layer starts).
_OUTBOUND_VIDEO = """
async () => {
  const frames = {};
  (await sfuClient.pc.getStats()).forEach((s) => {
    if (s.type !== "outbound-rtp" || s.kind !== "video") return;
    frames[s.ssrc] = [s.framesSent ?? 0, s.frameWidth ?? 0];
  });
  return frames;
}
"""


def sent_rate(before: dict[str, list[int]], after: dict[str, list[int]], seconds: float) -> float:
    """The frame rate, in between, of the encoding that is the largest at the end (the one the
    recorder takes)."""
    ssrc = max(after, key=lambda s: after[s][1])
    return (after[ssrc][0] - before.get(ssrc, [0])[0]) / seconds


# Plays each file (base64) in a muted <video>, 1.5 s, as a person opening it would.
_PLAY = """
async (files) => Promise.all(files.map(async (b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const video = document.createElement("video");
  video.muted = true;
  video.src = URL.createObjectURL(new Blob([bytes], {type: "video/webm"}));
  document.body.append(video);
  await video.play();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return {
    width: video.videoWidth, height: video.videoHeight, time: video.currentTime,
    duration: video.duration, error: video.error && video.error.message,
    frames: video.getVideoPlaybackQuality().totalVideoFrames,
    audioBytes: video.webkitAudioDecodedByteCount,
  };
}))
"""


async def badge_shown(page: RoomPage) -> bool:
    return await page.page.locator("#recording-badge").is_visible()


async def test_a_three_party_call_records_to_playable_files_in_sync(
    server: RunningServer, open_page: OpenPage, browser: Browser, tmp_path: Path
) -> None:
    async with RecorderProcess(server.url, "rec3", tmp_path) as recorder:
        carol = await open_page("rec3", "Carol")

        async def badge() -> str:
            return "" if await badge_shown(carol) else "no recording badge on Carol's page"

        await eventually_async(badge, timeout=10)
        publishers = {n: PublisherProcess(server.url, "rec3", n) for n in ("alice", "bob")}
        async with publishers["alice"], publishers["bob"]:
            started = {n: await recording(recorder, n) for n in ("alice", "bob", "Carol")}
            sent_before = await carol.page.evaluate(_OUTBOUND_VIDEO)
            before = time.time()
            await asyncio.sleep(RECORD_SECONDS)
            sent = await carol.page.evaluate(_OUTBOUND_VIDEO)
            after = time.time()
            published_fps = sent_rate(sent_before, sent, after - before)
            recorder.send_signal(signal.SIGINT)

            async def gone() -> str:
                if await badge_shown(carol):
                    return "badge still shown after the recorder left"
                return ""

            await eventually_async(gone, timeout=20)
            await eventually(lambda: "" if recorder.returncode is not None else "running", 20)
    assert recorder.returncode == 0, recorder.output()[-3000:]
    paths = {e["name"]: Path(e["path"]) for e in started.values()}
    assert sorted(files_in(tmp_path)) == sorted(paths.values())
    for name in ("alice", "bob"):
        skipped = publishers[name].skipped
        check_file(paths[name], seconds=span(recorder, started[name]), skipped=skipped)

    # Chromium's file: its camera's shape, the length recorded, its frame rate, A/V together.
    # Until its top simulcast layer flows (or when its bandwidth estimate says so) Chromium's
    # video is smaller: the file follows (test_a_simulcast_... checks the top layer).
    carol_file = paths["Carol"]
    with av.open(str(carol_file)) as container:
        video: Any = container.streams.video[0]
        audio: Any = container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name) == ("vp8", "opus")
        sizes = {(f.width, f.height) for f in container.decode(video=0)}
    width, height = max(sizes)
    assert all(abs(w / h - width / height) < 0.02 for w, h in sizes), sizes
    times = read(carol_file)  # no decode error
    duration = max(max(t) for t in times.values())
    assert duration == pytest.approx(span(recorder, started["Carol"]), abs=0.5), started["Carol"]
    # Its frame rate over the same window, by the file's own clock (0 = `start_time`).
    start = started["Carol"]["start_time"]
    window = [t for t in times["video"] if before - start <= t < after - start]
    recorded_fps = len(window) / (after - before)
    assert recorded_fps == pytest.approx(published_fps, rel=0.2), (recorded_fps, published_fps)
    # Audio and video start together: the pre-roll and pull-back rules leave no half-second blank
    # (a replayed keyframe, a keyframe asked for). Within 0.2 s: a page held up by load once sent
    # its first audio 113 ms after its first video, a true offset the file keeps.
    assert abs(times["video"][0] - times["audio"][0]) < 0.2, started["Carol"]
    print(
        f"Carol: {len(times['video'])} frames in {duration:.2f} s ({recorded_fps:.1f} fps, "
        f"published {published_fps:.1f}); A/V start offset "
        f"{1000 * (times['audio'][0] - times['video'][0]):.0f} ms; {started['Carol']}"
    )

    # And a browser plays them.
    context = await browser.new_context()
    try:
        page = await context.new_page()
        files = [base64.b64encode(paths[n].read_bytes()).decode() for n in ("Carol", "alice")]
        played = await page.evaluate(_PLAY, files)
    finally:
        await context.close()
    for result, name in zip(played, ("Carol", "alice"), strict=True):
        assert result["error"] is None, played
        assert (result["width"], result["height"]) in {*sizes, (320, 240)}, played
        assert result["time"] > 1.0 and result["frames"] > 10, played
        assert result["audioBytes"] > 0, played
        with av.open(str(paths[name])) as container:
            assert result["duration"] == pytest.approx((container.duration or 0) / 1e6, abs=0.1)


async def test_a_simulcast_publisher_is_recorded_at_its_top_layer(
    server: RunningServer, open_page: OpenPage, tmp_path: Path
) -> None:
    alice = await open_page("simrec", "alice", mic=False)
    sizes = await three_distinct_layers(alice)  # l, m and h all flowing
    async with RecorderProcess(server.url, "simrec", tmp_path) as recorder:
        opened_event = await recording(recorder, "alice")
        path = Path(opened_event["path"])

        def recording_h() -> str:
            # The file plays as it is written (one cluster a second): its latest frames.
            decoded = frame_sizes(path)
            return "" if decoded[-15:] == [sizes["h"]] * 15 else f"latest {decoded[-3:]}"

        await eventually(recording_h, timeout=20, interval=0.5)
        await recorder.stop()
    assert opened_event["tracks"] == ["video:video/VP8"]
    decoded = frame_sizes(path)
    assert decoded[-1] == sizes["h"] and set(decoded) <= set(sizes.values()), (sizes, decoded)


def frame_sizes(path: Path) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                sizes.append((frame.width, frame.height))
    except av.error.FFmpegError:
        pass  # the end of a file still being written
    return sizes
