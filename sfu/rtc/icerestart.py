"""ICE restart in place: new credentials, checks and candidates behind the same ICE transport,
keeping DTLS, SRTP, the senders, receivers and tracks: hooks into aiortc and aioice.

aiortc has no ICE restart: `RTCIceTransport.start()` returns at once once started, so an offer
with new credentials is answered with the old ones and nothing moves. What works instead is
replacing the aioice `Connection` behind the one `RTCIceTransport` (max-bundle: one per peer
connection), because the DTLS transport looks up the ICE transport's `_recv`/`_send` on every
call. In steps, and the order is what makes it work:

1. `begin()` (before our offer, or before we answer the remote's offer with new credentials):
   a new `Connection` of the same role and servers gathers new candidates on new ports, and
   becomes the gatherer's, so the description we make carries its credentials and candidates.
   The old one stays the transport's `_connection` and keeps carrying media: the forwarding
   fast path, RTCP and the ingress follow `_connection`, so a restart on a healthy path shows
   no gap. Remote candidates go to the new one. Its datagrams go through the old one's
   `data_received` (the ingress's hook, when one is installed) into the old one's receive queue,
   which the DTLS reader is waiting on. The old one's consent checks stop, or their expiry
   would close it and tear DTLS down.
2. `remote_description(sdp)`, after the remote description with the new credentials is set:
   the new connection's checks start (aiortc would not: its transport is "started"). They
   get `DEADLINE` seconds, since Chromium sends no end-of-candidates after a restart.
3. Once a pair is nominated: the new connection becomes the transport's `_connection`,
   `_send`, `_recv`, with an ICE-state monitor of its own; `on_switched` runs (the caller
   re-hooks the ingress and refreshes its outputs at once). The old one still receives for
   OLD_PAIR_GRACE seconds, handing its datagrams to the new one (a remote may keep sending on
   the old pair a while), then is closed; from the switch on it has a receive queue of its own,
   so its end-of-queue sentinel never reaches the DTLS reader (`_send` pointing at a closed
   connection would end aiortc's RTP sender loop for good).
4. When the checks fail or time out, the old connection is put back (its consent checks too):
   if its path still works nothing was lost.

`begin()` returns False when an in-place restart is impossible (DTLS not up, the connection
already closed, or these internals moved in an aiortc/aioice upgrade): the caller falls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import aioice
from aiortc import RTCDtlsTransport, RTCIceCandidate, RTCPeerConnection
from aiortc.rtcicetransport import candidate_to_aioice

logger = logging.getLogger(__name__)

DEADLINE = 10.0  # seconds for the new generation's checks to nominate a pair
OLD_PAIR_GRACE = 8.0  # seconds the replaced connection still receives after a switch

_closing: set[asyncio.Task[None]] = set()  # old connections being closed after a switch
_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)


def remote_ufrag(sdp: str) -> str | None:
    """The first ICE username fragment of a description (max-bundle: they are all one)."""
    match = _UFRAG.search(sdp)
    return match.group(1) if match else None


def dtls_transport(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    """The DTLS transport every m-line shares (max-bundle); None before any transceiver."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    transport: RTCDtlsTransport = transceivers[0].receiver.transport
    return transport


class IceRestart:
    """ICE restarts of one peer connection, one at a time (a new one abandons one in progress)."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        on_switched: Callable[[], None] | None = None,
        on_done: Callable[[bool, float], None] | None = None,
    ) -> None:
        self.pc = pc
        self.on_switched = on_switched  # the new pair carries media now
        self.on_done = on_done  # (succeeded, seconds since begin())
        self.restarts = 0  # completed in place
        self.failures = 0  # checks failed or timed out: the old connection was put back
        self._pending: Any = None  # the new Connection, until it is nominated or given up
        self._old: Any = None
        self._ice: Any = None
        self._started_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._candidate_added = asyncio.Event()  # for the new generation (its checks wait)
        self._retiring: set[Any] = set()  # replaced connections, closed after OLD_PAIR_GRACE
        self._old_candidates_end = False  # the old generation's end-of-candidates, put back

    @property
    def in_progress(self) -> bool:
        return self._pending is not None

    def is_restart(self, sdp: str) -> bool:
        """Whether a remote description carries ICE credentials other than those of the
        connection in use (the remote restarted ICE, or is answering our restart)."""
        dtls = dtls_transport(self.pc)
        if dtls is None or dtls.transport._connection.remote_username is None:
            return False  # ICE never started: nothing to restart
        ufrag = remote_ufrag(sdp)
        pending = self._pending
        if pending is not None and pending.remote_username is not None:
            return ufrag not in (
                pending.remote_username,
                dtls.transport._connection.remote_username,
            )
        return ufrag is not None and ufrag != dtls.transport._connection.remote_username

    @property
    def waiting_for_remote(self) -> bool:
        """begin() ran, and the remote description with its credentials has not come yet."""
        return self._pending is not None and self._pending.remote_username is None

    async def begin(self) -> bool:
        """New local credentials and candidates, in place; False when that is impossible."""
        await self.abandon()
        dtls = dtls_transport(self.pc)
        try:
            if dtls is None or dtls.state != "connected":
                return False
            ice: Any = dtls.transport
            old: Any = ice._connection
            if ice.state not in ("checking", "completed") or old._closed or not old._nominated:
                return False
            new: Any = aioice.Connection(
                ice_controlling=old.ice_controlling,
                components=len(old._components),
                stun_server=old.stun_server,
                turn_server=old.turn_server,
                turn_username=old.turn_username,
                turn_password=old.turn_password,
                turn_ssl=old.turn_ssl,
                turn_transport=old.turn_transport,
                use_ipv4=old._use_ipv4,
                use_ipv6=old._use_ipv6,
                transport_policy=old._transport_policy,
            )
            new._tie_breaker = old._tie_breaker  # one agent, one tie-breaker (RFC 8445 7.3.1.1)
        except AttributeError:
            logger.exception("ICE restart in place: aiortc/aioice internals changed")
            return False
        self._started_at = time.monotonic()
        await new.gather_candidates()
        # The old one may have died while we gathered.
        if dtls.state != "connected" or old._closed or ice._connection is not old:
            await new.close()
            return False
        new._queue = old._queue  # what the DTLS reader is waiting on
        new.data_received = lambda data, component: old.data_received(data, component)
        consent = old._query_consent_task
        if consent is not None and not consent.done():
            consent.cancel()
        old._query_consent_task = None
        self._pending, self._old, self._ice = new, old, ice
        self._candidate_added.clear()
        ice.iceGatherer._connection = new  # our next description carries its credentials
        self._old_candidates_end = ice.iceGatherer._remote_candidates_end
        ice.iceGatherer._remote_candidates_end = False
        ice.addRemoteCandidate = self._add_remote_candidate
        return True

    def remote_description(self, sdp: str) -> None:
        """The remote description with the new credentials is set: start the checks."""
        new = self._pending
        if new is None or new.remote_username is not None:
            return
        media = _remote_ice(sdp)
        if media is None:
            return
        new.remote_username, new.remote_password, new.remote_is_lite = media
        self._task = asyncio.ensure_future(self._connect(new))

    async def abandon(self) -> None:
        """Give up a restart in progress, putting the old connection back."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        if self._pending is not None:
            await self._give_up(self._pending)
        retiring, self._retiring = self._retiring, set()
        for old in retiring:
            await _close_quietly(old)

    async def _add_remote_candidate(self, candidate: RTCIceCandidate | None) -> None:
        # RTCIceTransport.addRemoteCandidate, for the new generation.
        new, gatherer = self._pending, self._ice.iceGatherer
        if new is None or gatherer._remote_candidates_end:
            return
        if candidate is None:
            if not new._remote_candidates:
                # Before any candidate of the new generation: the old generation's (Chromium,
                # answered fast, still says its gathering is complete). DEADLINE ends a
                # generation that truly has none.
                return
            gatherer._remote_candidates_end = True
            await new.add_remote_candidate(None)
        else:
            await new.add_remote_candidate(candidate_to_aioice(candidate))
        self._candidate_added.set()

    async def _connect(self, new: Any) -> None:
        try:
            await asyncio.wait_for(self._checks(new), DEADLINE)
        except (ConnectionError, TimeoutError) as exc:
            logger.info("ICE restart: the new checks failed (%s)", exc or "no pair in time")
            await self._give_up(new)
            self._report(False)
            return
        if self._pending is not new:
            return
        self._switch(new)
        self._report(True)

    async def _checks(self, new: Any) -> None:
        # aioice fails at once when it has no pair to check, and a browser trickles its
        # candidates after its description: wait for one, or for its end-of-candidates.
        if not (new._remote_candidates or new._remote_candidates_end):
            await self._candidate_added.wait()
        await new.connect()

    def _switch(self, new: Any) -> None:
        ice, old = self._ice, self._old
        self._pending = self._old = None
        del new.data_received  # the class's own again: the ingress hooks it in on_switched
        del ice.addRemoteCandidate
        ice._connection = new
        ice._send = new.send
        ice._recv = new.recv
        monitor = ice._RTCIceTransport__monitor_task
        if monitor is not None:
            monitor.cancel()  # it waits on the old connection's close, which would fail us
        ice._RTCIceTransport__monitor_task = asyncio.ensure_future(ice._monitor())
        self.restarts += 1
        if self.on_switched is not None:
            self.on_switched()
        # The remote may take a moment to move to the pair we nominated (Chromium, controlled,
        # was seen sending its RTCP on the old pair for seconds): the old one hands what it
        # receives to the new one, for OLD_PAIR_GRACE.
        old._queue = asyncio.Queue()  # its end-of-queue sentinel must not reach DTLS
        old.data_received = lambda data, component: new.data_received(data, component)
        # But it answers no more checks: a remote that sees the old pair still answer keeps it
        # (Chromium, controlled, stayed on it until it closed).
        old.request_received = lambda message, addr, protocol: None
        self._retiring.add(old)
        asyncio.get_running_loop().call_later(OLD_PAIR_GRACE, self._retire, old)

    def _retire(self, old: Any) -> None:
        if old in self._retiring:
            self._retiring.discard(old)
            closing = asyncio.ensure_future(_close_quietly(old))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)

    async def _give_up(self, new: Any) -> None:
        ice, old = self._ice, self._old
        self._pending = self._old = None
        self.failures += 1
        with contextlib.suppress(AttributeError):
            del ice.addRemoteCandidate
        ice.iceGatherer._connection = old
        # Or the next description's candidates (a renegotiation) would go to the old
        # connection after its end-of-candidates, which aioice refuses (ValueError).
        ice.iceGatherer._remote_candidates_end = self._old_candidates_end
        if ice._connection is old and not old._closed and old._nominated:
            old._query_consent_task = asyncio.ensure_future(old.query_consent())
        await _close_quietly(new)

    def _report(self, succeeded: bool) -> None:
        if self.on_done is not None:
            self.on_done(succeeded, time.monotonic() - self._started_at)


async def _close_quietly(conn: Any) -> None:
    """Close a connection without waking the DTLS reader that shares its receive queue."""
    conn._queue = asyncio.Queue()
    conn.data_received = lambda data, component: None
    await conn.close()


def _remote_ice(sdp: str) -> tuple[str, str, bool] | None:
    ufrag = remote_ufrag(sdp)
    pwd = re.search(r"^a=ice-pwd:(\S+)", sdp, re.MULTILINE)
    if ufrag is None or pwd is None:
        return None
    return ufrag, pwd.group(1), re.search(r"^a=ice-lite", sdp, re.MULTILINE) is not None
