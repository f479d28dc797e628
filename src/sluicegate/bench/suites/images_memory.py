"""The memory half of ``sluicegate bench images``: each server's whole process tree, measured the same way.

Issue #16 §4 asks for "peak RSS" (goal: <= 1/2 thumbor's). A server here is a process tree (sluicegate: a
supervisor and its worker, or one process with ``[server] supervisor = false``; thumbor: one process), so one
number is not enough, and every figure is taken
for both servers in the same run:

* ``peak_rss_mib``: the sum of each process's ``VmHWM`` (its own peak resident set). What the issue's words
  say, but it counts twice the pages the supervisor and its worker share (the interpreter, libraries);
* ``peak_pss_mib``: the largest summed PSS seen (sampled every 100 ms): each shared page counted once,
  split between the processes that map it. The fairest "memory of the service";
* ``peak_rss_largest_process_mib``: the image process alone (our worker, thumbor's process);
* ``idle``: after start-up, before any image (per process too: what the supervisor costs by itself);
  ``after_one_image``: the same once the image engine is loaded; ``after_run``: once the rounds are done
  (what a burst leaves behind).

Must not know about the proxy's internals: it reads /proc.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MIB = 2**20


def _status(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def role(pid: int) -> str:
    """What a process of a server's tree is: supervisor, worker, configcheck, thumbor, or its command name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    words = [a.decode(errors="replace") for a in argv if a]
    if "sluicegate.server.worker" in words:
        return "worker"
    if "sluicegate.server.configcheck" in words:
        return "configcheck"
    if "serve" in words and any(w.endswith("sluicegate") for w in words):
        return "supervisor"
    if any(w.endswith("thumbor") for w in words):
        return "thumbor"
    return Path(words[0]).name if words else "?"


def footprint(pids: list[int]) -> dict[str, Any]:
    """Resident set and PSS now, summed and per process (MiB)."""
    procs: list[dict[str, Any]] = []
    for pid in sorted(pids):
        rss, pss = _status(pid, "VmRSS"), _pss(pid)
        if rss:
            procs.append({"pid": pid, "role": role(pid), "rss_mib": round(rss / MIB, 1),
                          "pss_mib": round(pss / MIB, 1)})
    if not any(p["role"] == "worker" for p in procs):  # `serve` with supervisor = false serves itself
        for p in procs:
            p["role"] = "one-process" if p["role"] == "supervisor" else p["role"]
    return {"rss_mib": round(sum(p["rss_mib"] for p in procs), 1),
            "pss_mib": round(sum(p["pss_mib"] for p in procs), 1), "processes": procs}


def ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    """sluicegate / thumbor for every memory figure (goal <= 0.5)."""
    def r(x: float | None, y: float | None) -> float | None:
        return round(x / y, 3) if x and y else None

    return {
        "peak_rss": r(a["peak_rss_mib"], b["peak_rss_mib"]),
        "peak_pss": r(a["peak_pss_mib"], b["peak_pss_mib"]),
        "peak_rss_image_process": r(a["peak_rss_largest_process_mib"], b["peak_rss_largest_process_mib"]),
        "idle_rss": r(a["idle"]["rss_mib"], b["idle"]["rss_mib"]),
        "idle_pss": r(a["idle"]["pss_mib"], b["idle"]["pss_mib"]),
    }


def text(result: dict[str, Any]) -> str:
    """The memory table: peak RSS and PSS side by side, then idle / after one image / after the run."""
    lines = ["memory (MiB; RSS sums each process's own figure, PSS counts a shared page once):",
             f"{'server':17s} {'peak RSS':>9s} {'peak PSS':>9s} {'img proc':>9s} {'idle RSS':>9s} {'idle PSS':>9s} "
             f"{'1 img RSS':>9s} {'1 img PSS':>9s} {'after RSS':>9s} {'after PSS':>9s}  idle per process (RSS/PSS)"]
    for name, s in result["servers"].items():
        per = ", ".join(f"{p['role']} {p['rss_mib']:.1f}/{p['pss_mib']:.1f}" for p in s["idle"]["processes"])
        lines.append(f"{name:17s} {s['peak_rss_mib']:9.1f} {s['peak_pss_mib']:9.1f} "
                     f"{s['peak_rss_largest_process_mib']:9.1f} "
                     f"{s['idle']['rss_mib']:9.1f} {s['idle']['pss_mib']:9.1f} "
                     f"{s['after_one_image']['rss_mib']:9.1f} {s['after_one_image']['pss_mib']:9.1f} "
                     f"{s['after_run']['rss_mib']:9.1f} {s['after_run']['pss_mib']:9.1f}  {per}")
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}x"

    for key, label in (("memory_ratios", "sluicegate"), ("memory_ratios_one_process", "sluicegate one process")):
        rat = result.get(key)
        if rat:
            lines.append(f"{label}/thumbor memory (goal <= 0.5x): peak RSS {f(rat['peak_rss'])}, peak PSS "
                         f"{f(rat['peak_pss'])}, image process {f(rat['peak_rss_image_process'])}, idle RSS "
                         f"{f(rat['idle_rss'])}, idle PSS {f(rat['idle_pss'])}")
    return "\n".join(lines)
