"""Figure: seconds from a Chromium page publishing simulcast to all three layers flowing.

    python -m loadtest.ramp [--runs 5] [--no-transport-cc]

Each run starts a fresh server in this process, three Python subscribers asking for `l`, `m`
and `h` (so that dynacast pauses none), and a fresh headless Chromium (Debian's, with the flags
of ../shared/testing.md) on the room page with the fake camera at 1280x720 (each layer its own
size); it times, at the server, from the publication's first layer flowing to its `l`, `m` and
`h` all flowing. Also prints Chromium's
estimate (`availableOutgoingBitrate`) then. `--no-transport-cc` answers without transport-cc,
as before it was negotiated (REMB and receiver reports only), for the reference beside it. Needs
root for its own network namespace (loopback only): it re-executes itself in one.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlencode

from loadtest import netns
from loadtest.chromium import CHROMIUM, CHROMIUM_ARGS
from loadtest.options import parser as make_parser

# The page asks for 640x480; a 720p camera gives l/m/h their own sizes (320x180 ... 1280x720).
CAMERA_720P = """
const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => original({...constraints,
  video: constraints.video ? {width: {exact: 1280}, height: {exact: 720}} : false});
"""
ESTIMATE = """
async () => {
  let estimate = null;
  const pc = globalThis.sfuClient?.pc;
  if (pc) (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate)
      estimate = s.availableOutgoingBitrate;
  });
  return estimate;
}
"""


async def one_run(transport_cc: bool, timeout: float) -> tuple[float | None, int | None]:
    from playwright.async_api import async_playwright

    from sfu import participant
    from sfu.client import Client
    from sfu.server import RunningServer, ServerConfig

    if not transport_cc:
        setattr(participant, "accept_transport_cc", lambda pc: None)  # noqa: B010
    server = await RunningServer(ServerConfig(port=0, ice_addresses=["127.0.0.1"])).start()
    # Three subscribers, one per layer: every layer is wanted (dynacast would pause the others).
    clients = [
        Client(server.url, "ramp", name=f"on-{rid}", ice_addresses=["127.0.0.1"], decode=False)
        for rid in "lmh"
    ]
    try:
        for client in clients:
            await client.connect()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = await (await browser.new_context()).new_page()
                await page.add_init_script(CAMERA_720P)
                query = urlencode({"room": "ramp", "name": "pub", "mic": "0"})
                await page.goto(f"{server.page_url}?{query}")
                for client, rid in zip(clients, "lmh", strict=True):
                    remote = await client.next_track(timeout=20)
                    await client.set_layer(remote, rid)
                started: float | None = None
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    pubs = [
                        p
                        for peer in server.backend.participants()
                        for p in peer.publications.values()
                        if p.kind == "video"
                    ]
                    if pubs and started is None and pubs[0].flowing:
                        started = time.monotonic()
                    if pubs and len(pubs[0].flowing) == 3 and started is not None:
                        estimate = await page.evaluate(ESTIMATE)
                        return time.monotonic() - started, estimate
                    await asyncio.sleep(0.05)
                return None, await page.evaluate(ESTIMATE)
            finally:
                await browser.close()
    finally:
        for client in clients:
            await client.close()
        await server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = make_parser("python -m loadtest.ramp", __doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=40.0, help="seconds per run")
    parser.add_argument(
        "--no-transport-cc", action="store_true", help="answer without transport-cc"
    )
    args = parser.parse_args(argv)
    if not netns.inside_own_namespace():
        netns.reexec_in_new_namespace("loadtest.ramp", sys.argv[1:])
    netns.prepare(veth=False)
    times: list[float] = []
    for run in range(args.runs):
        took, estimate = asyncio.run(one_run(not args.no_transport_cc, args.timeout))
        shown = f"{took:.2f} s" if took is not None else f"not within {args.timeout:.0f} s"
        print(
            f"run {run + 1}: all three layers flowing after {shown}; Chromium's estimate "
            f"then {estimate and estimate // 1000} kbps",
            flush=True,
        )
        if took is not None:
            times.append(took)
    mode = "without transport-cc" if args.no_transport_cc else "with transport-cc"
    if times:
        print(
            f"{mode}: median {statistics.median(times):.2f} s, min {min(times):.2f}, "
            f"max {max(times):.2f}, {len(times)}/{args.runs} runs got there"
        )


if __name__ == "__main__":
    main()
