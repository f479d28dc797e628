"""``sluicegate profile``: the proxy under py-spy while a load command runs; a flame graph and top functions.

Starts ``sluicegate serve --config FILE --port P``, waits until it answers, attaches
``py-spy record --pid PID --subprocesses --format raw`` (so start-up is not profiled), runs the given
load command (``{url}`` in it becomes the proxy's URL), stops py-spy with SIGINT (it then writes its
collapsed stacks), stops the proxy, and renders from the stacks:
``flamegraph.svg`` (self-contained SVG, hover for details), ``top.txt`` (functions by self time) and
``stacks.txt`` (the raw collapsed stacks, usable with other flame graph tools).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sluicegate.bench.proc import ServeError, Server, free_port, serve_argv
from sluicegate.bench.report import table


class ProfileError(Exception):
    pass


@dataclass
class ProfileReport:
    out_dir: Path
    flamegraph: Path
    top_file: Path
    stacks_file: Path
    samples: int
    top: list[tuple[str, int]] = field(default_factory=list)
    load_command: list[str] = field(default_factory=list)
    load_exit_code: int = 0
    url: str = ""


def find_py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("py-spy")
    if found:
        return found
    raise ProfileError("profile needs py-spy: pip install py-spy")


_COUNT = re.compile(r"^(.*) (\d+)$", re.S)
_LINE = re.compile(r":\d+\)$")


def parse_collapsed(text: str) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (``a;b;c 12`` per record). Process names may contain newlines, so a record ends
    only at a line ending in `` <count>``."""
    stacks: Counter[tuple[str, ...]] = Counter()
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        match = _COUNT.match(pending)
        if match:
            frames = tuple(f for f in match.group(1).split(";") if f)
            stacks[frames] += int(match.group(2))
            pending = ""
    return stacks


def _frame_name(frame: str) -> str:
    if frame.startswith("process "):
        return frame.split("\n", 1)[0]
    return _LINE.sub(")", frame)


def top_self(stacks: Counter[tuple[str, ...]], limit: int = 25) -> list[tuple[str, int]]:
    """Functions (name and file, line numbers merged) by samples in which they were the leaf."""
    selfs: Counter[str] = Counter()
    for frames, count in stacks.items():
        python = [f for f in frames if not f.startswith("process ")]
        if python:
            selfs[_frame_name(python[-1])] += count
    return selfs.most_common(limit)


# ---------------------------------------------------------------------------------------------- SVG


@dataclass
class _Node:
    name: str
    total: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: Counter[tuple[str, ...]]) -> _Node:
    root = _Node("all")
    for frames, count in stacks.items():
        root.total += count
        node = root
        for frame in frames:
            name = _frame_name(frame)
            node = node.children.setdefault(name, _Node(name))
            node.total += count
    return root


def _color(name: str) -> str:
    digest = hashlib.md5(name.encode(), usedforsecurity=False).digest()
    return f"rgb({205 + digest[0] % 50},{80 + digest[1] % 130},{digest[2] % 60})"


def flamegraph_svg(stacks: Counter[tuple[str, ...]], title: str, width: int = 1200) -> str:
    root = _tree(stacks)
    row, pad = 17, 30
    depth = 0
    rects: list[str] = []
    total = max(root.total, 1)

    def walk(node: _Node, x: float, level: int) -> None:
        nonlocal depth
        depth = max(depth, level)
        w = node.total / total * (width - 20)
        if w < 0.3:
            return
        rects.append(_rect(node, x + 10, level, w, total))
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            walk(child, cx, level + 1)
            cx += child.total / total * (width - 20)

    walk(root, 0.0, 0)
    height = (depth + 1) * row + pad * 2
    body = "\n".join(
        r.replace("{Y}", str(height - pad - (int(r.split('data-l="')[1].split('"')[0]) + 1) * row))
        for r in rects
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="Verdana,sans-serif" font-size="11">\n'
        f'<rect width="100%" height="100%" fill="#f8f8f0"/>\n'
        f'<text x="{width // 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>\n'
        f"{body}\n</svg>\n"
    )


def _rect(node: _Node, x: float, level: int, w: float, total: int) -> str:
    pct = node.total / total * 100
    label = html.escape(f"{node.name} ({node.total} samples, {pct:.2f} %)")
    chars = int(w / 7)
    text = ""
    if chars >= 3:
        shown = node.name if len(node.name) <= chars else node.name[: chars - 2] + ".."
        text = f'<text x="{x + 3:.1f}" y="{{Y}}" dy="12">{html.escape(shown)}</text>'
    return (
        f'<g data-l="{level}"><title>{label}</title>'
        f'<rect x="{x:.1f}" y="{{Y}}" width="{w:.1f}" height="16" fill="{_color(node.name)}" rx="2"/>'
        f"{text}</g>"
    )


# ---------------------------------------------------------------------------------------------- run


def run(
    *,
    config: str,
    command: list[str],
    out_dir: str,
    port: int | None = None,
    rate: int = 200,
    serve_cmd: str | None = None,
    top: int = 25,
) -> ProfileReport:
    if not Path(config).is_file():
        raise ProfileError(f"config file not found: {config}")
    py_spy = find_py_spy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stacks_file = out / "stacks.txt"
    stacks_file.unlink(missing_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(serve_argv(Path(config), port, serve_cmd), port, out / "serve.log", "sluicegate")
    load_cmd = [part.replace("{url}", url) for part in command]
    spy_log = out / "py-spy.log"
    spy: subprocess.Popen[bytes] | None = None
    code = 0
    server.start()
    try:
        server.wait_ready("/")
        assert server.popen is not None
        # attach once the proxy is up, so start-up (imports) is not in the profile
        with open(spy_log, "wb") as log:
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(server.pid), "--subprocesses", "--format", "raw",
                 "--rate", str(rate), "--output", str(stacks_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait_sampling(spy, spy_log)
        print(f"profiling {url}; running: {' '.join(load_cmd)}", file=sys.stderr, flush=True)
        try:
            code = subprocess.run(load_cmd, check=False).returncode
        except OSError as exc:
            raise ProfileError(f"cannot run the load command {load_cmd[0]!r}: {exc}") from exc
    except ServeError as exc:
        raise ProfileError(str(exc)) from exc
    finally:
        if spy is not None:
            _stop_recording(spy)
        server.stop()
    if not stacks_file.is_file():
        raise ProfileError(f"py-spy wrote no profile; its output:\n{spy_log.read_text(errors='replace')}")
    stacks = parse_collapsed(stacks_file.read_text(errors="replace"))
    samples = sum(stacks.values())
    svg = out / "flamegraph.svg"
    svg.write_text(flamegraph_svg(stacks, f"sluicegate profile: {samples} samples at {rate} Hz"))
    top_list = top_self(stacks, top)
    top_file = out / "top.txt"
    top_file.write_text(_top_table(top_list, samples) + "\n")
    return ProfileReport(out, svg, top_file, stacks_file, samples, top_list, load_cmd, code, url)


def _wait_sampling(spy: subprocess.Popen[bytes], log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spy.poll() is not None:
            raise ProfileError(
                f"py-spy exited with code {spy.returncode} (ptrace not permitted? in a container run it "
                f"with --cap-add SYS_PTRACE):\n{log.read_text(errors='replace')}"
            )
        if "Sampling process" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise ProfileError(f"py-spy did not start sampling within {timeout:g} s")


def _stop_recording(spy: subprocess.Popen[bytes]) -> None:
    """SIGINT, like Ctrl-C: py-spy stops sampling and writes its file."""
    if spy.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=20)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(timeout=5)


def _top_table(top: list[tuple[str, int]], samples: int) -> str:
    rows = [[name, f"{count}", f"{count / max(samples, 1) * 100:.1f} %"] for name, count in top]
    return table(["function (file), by self time", "samples", "share"], rows)


def render(report: ProfileReport) -> str:
    lines = [
        f"load command exit code {report.load_exit_code}; {report.samples} samples",
        "top functions by self time:",
        _top_table(report.top[:15], report.samples),
        f"flame graph: {report.flamegraph}",
        f"top list:    {report.top_file}",
        f"raw stacks:  {report.stacks_file}",
    ]
    return "\n".join(lines)
