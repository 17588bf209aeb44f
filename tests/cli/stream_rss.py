"""Peak RSS of the agent's streaming path during a big streamed download (issue 23 item 4).

    .venv/bin/python tests/cli/stream_rss.py [--mb 100] [--lane chunks|segments]

One process: a local aiohttp app on 127.0.0.1 that writes ``--mb`` MiB in 1 MiB writes, the
agent's Streamer (ttf.streaming) with a real Forwarder, and an edge that reads (acks) every frame
at once and drops it; with ``--lane segments`` the request carries a segment form whose POST
target (also here) reads each upload and drops it. Prints one JSON line: the RSS before the
download, the peak (VmHWM) after it, and the growth. The app and the fake edge live in the
same process, so the growth is an upper bound of the agent's own. tests/cli/test_stream_rss.py
(marked load) runs it and asserts the growth stays far below the body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

from httptunnel import protocol
from ttf.forward import Forwarder, local_session, remote_session
from ttf.streaming import Streamer, StreamSlots

MIB = 1024 * 1024


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` size in KiB: VmRSS (resident now) or VmHWM (this process's peak).

    Not ``getrusage().ru_maxrss``: Linux carries the forked parent's peak across exec into it
    (a probe started from a 110 MiB pytest reported 111.6 MiB for both lanes)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def main(mb: int, lane: str) -> dict[str, Any]:
    block = bytes(range(256)) * 4096  # 1 MiB

    async def download(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        for _ in range(mb):
            await resp.write(block)
        await resp.write_eof()
        return resp

    uploaded = 0

    async def form(request: web.Request) -> web.Response:
        nonlocal uploaded
        reader = await request.multipart()
        async for part in reader:
            if part.name == "file":
                while chunk := await part.read_chunk(MIB):  # type: ignore[union-attr]
                    uploaded += len(chunk)
        return web.Response(status=204)

    app = web.Application(client_max_size=16 * MIB)
    app.router.add_get("/download", download)
    app.router.add_post("/form", form)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    local, remote = local_session(8), remote_session()
    fwd = Forwarder(local=local, remote=remote, host="127.0.0.1", port=port, request_timeout=600.0)
    streamer = Streamer(fwd, StreamSlots(8))
    received = 0
    frames = 0

    async def edge(frame: str) -> bool:
        nonlocal received, frames
        message = protocol.decode(frame)
        assert isinstance(message, (protocol.HttpResponseHead, protocol.HttpResponseChunk, protocol.HttpResponseEnd))
        frames += 1
        if isinstance(message, protocol.HttpResponseChunk):
            received += message.size if message.segment else len(protocol.b64decode(message.body))
        streamer.on_ack(protocol.StreamAck(message.request_id, message.seq))
        return True

    offer: dict[str, Any] = {"window": protocol.STREAM_WINDOW}
    if lane == "segments":
        offer["segment_form"] = {"url": f"http://127.0.0.1:{port}/form", "fields": {"key": "resp/x"}}
    req = protocol.HttpRequest(request_id="rss", method="GET", uri="/download", time_left_ms=600_000, stream=offer)
    before = status_kib("VmRSS")
    started = time.monotonic()
    assert streamer.admit(req.request_id)
    result = await streamer.serve(req, edge, None)
    elapsed = time.monotonic() - started
    peak = status_kib("VmHWM")
    await local.close()
    await remote.close()
    await runner.cleanup()
    assert result.event.error is None and received == mb * MIB, (result.event, received)
    return {"lane": lane, "body_mib": mb, "frames": frames, "uploaded_mib": round(uploaded / MIB, 1),
            "seconds": round(elapsed, 2), "rss_before_mib": round(before / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1), "growth_mib": round((peak - before) / 1024, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--lane", choices=("chunks", "segments"), default="chunks")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.mb, args.lane))))
