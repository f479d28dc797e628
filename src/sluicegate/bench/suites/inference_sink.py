"""Per-event Python cost of the relay's shape, socket-free (``sluicegate bench inference-sink``, ~10 s).

Measures, in CPU time on uvloop, what a relay pays per SSE event above one loop turn: (a) the shape the
gateway has — the origin connection's body callback buffers and sets a future, the relay task wakes,
``SseTap.split`` runs and the chunk goes down a chain of four ``send`` coroutines (relay → ``ClientWatch``
→ observer → serving core) to a write; (b) a sink — the body callback runs the tap and the write itself.
The difference bounds what an origin-response sink in the upstream client (a serving-core change) could
save per event. No gateway code besides ``SseTap`` is imported: the chain is modelled, not measured in place.
Writes ``bench/results/inference-sink.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.inference.sse import SseTap

EVENT = (b'data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1,"model":"m","choices":'
         b'[{"index":0,"delta":{"content":"abcd"},"finish_reason":null}],"usage":null}\n\n')


async def measure(n: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    out: list[bytes] = []
    write = out.append

    async def core_send(msg: dict[str, Any]) -> None:
        write(msg["body"])

    async def observer_send(msg: dict[str, Any]) -> None:
        msg.get("body")
        await core_send(msg)

    async def watch_send(msg: dict[str, Any]) -> None:
        msg.get("more_body", False)
        await observer_send(msg)

    chunks: list[bytes] = []
    waiter: list[asyncio.Future[None] | None] = [None]

    def on_body(body: bytes) -> None:
        chunks.append(body)
        w = waiter[0]
        if w is not None and not w.done():
            w.set_result(None)

    async def read() -> bytes:
        while not chunks:
            fut: asyncio.Future[None] = loop.create_future()
            waiter[0] = fut
            try:
                await fut
            finally:
                waiter[0] = None
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return data

    tap = SseTap()

    async def relay() -> None:
        for _ in range(n):
            chunk = tap.split(await read())
            await watch_send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def origin() -> None:
        for _ in range(n):
            on_body(EVENT)
            await asyncio.sleep(0)  # one loop turn per event, as when events arrive apart

    t0 = time.thread_time()
    await asyncio.gather(relay(), origin())
    task_shape = (time.thread_time() - t0) / n * 1e6
    t0 = time.thread_time()
    for _ in range(n):
        await asyncio.sleep(0)
    turn = (time.thread_time() - t0) / n * 1e6
    sink_tap = SseTap()
    t0 = time.thread_time()
    for _ in range(n):
        write(sink_tap.split(EVENT))
        await asyncio.sleep(0)
    sink = (time.thread_time() - t0) / n * 1e6
    return {"task_shape_us_per_event": task_shape, "sink_us_per_event": sink, "loop_turn_us": turn,
            "saved_us_per_event": task_shape - sink, "saved_us_per_31_event_stream": 31 * (task_shape - sink)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench inference-sink", description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(lab.results_dir() / "inference-sink.json"))
    args = ap.parse_args(argv)
    import uvloop

    rounds = [uvloop.run(measure(args.events)) for _ in range(args.rounds)]
    med = {k: sorted(r[k] for r in rounds)[len(rounds) // 2] for k in rounds[0]}
    print(f"per event above one loop turn ({med['loop_turn_us']:.2f} us): task + send chain "
          f"{med['task_shape_us_per_event'] - med['loop_turn_us']:.2f} us, sink "
          f"{med['sink_us_per_event'] - med['loop_turn_us']:.2f} us; a sink saves {med['saved_us_per_event']:.2f} us "
          f"per event, {med['saved_us_per_31_event_stream']:.0f} us per 31-event stream")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"benchmark": "inference-sink", "rounds": rounds, "median": med,
                                          "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
