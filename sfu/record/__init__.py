"""Recording: a room to playable files, from encoded frames, with no decoder or encoder.

`aiosfu record` (sfu.record.cli) runs a Recorder; a bot can run one itself:

    recorder = Recorder("ws://127.0.0.1:8080/ws", "standup", "recordings",
                        select=lambda remote, name: remote.kind == "audio")
    task = asyncio.ensure_future(recorder.run())
    ...
    recorder.stop()
    await task          # every file finished

Modules: recorder (the bot: joins, reconnects, events), participant (one participant's files),
timeline (where each track starts: the sync decision), container (PyAV muxing, crash-safe
layout), codecs (what the header needs, read from the frames).
"""

from .participant import FileStatus
from .recorder import Recorder, RecorderError, RecorderEvent

__all__ = ["FileStatus", "Recorder", "RecorderError", "RecorderEvent"]
