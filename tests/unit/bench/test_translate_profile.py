"""``bench translate --profile``: each py-spy sample goes to the part of the path of its innermost frame."""

from __future__ import annotations

from sluicegate.bench.profile import parse_collapsed
from sluicegate.bench.suites.translate_profile import shares

RUN = "Runner.run (asyncio/runners.py:118)"
APP = "InferenceApp._serve (sluicegate/inference/app.py:244)"
FEED = "StreamTranslator.feed (sluicegate/inference/translate/stream.py:471)"
SEND = "RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:544)"
READ = "_Connection.read (sluicegate/upstream/http1.py:273)"


def test_samples_go_to_their_innermost_part() -> None:
    text = "\n".join([
        f"{RUN};{APP};{FEED} 30",  # the translator's own time
        f"{RUN};{APP};{SEND} 40",  # uvicorn's write, called from the relay
        f"{RUN};{APP};{READ} 10",  # the origin client under attempts
        f"{RUN};{APP} 5",  # the gateway's own inference code
        f"{RUN} 10",  # the loop itself (uvloop in C)
        "<module> (x.py:1) 5",
    ])
    got = dict(shares(parse_collapsed(text)))
    assert got == {"translator (inference/translate/)": 0.30, "uvicorn send (the write per read)": 0.40,
                   "origin client (upstream/)": 0.10, "intake, attempts, routing, relay": 0.05,
                   "event loop (uvloop, in C)": 0.10, "other": 0.05}


def test_no_samples_no_shares() -> None:
    assert all(share == 0 for _, share in shares(parse_collapsed("")))
