"""The ``Dockerfile``, checked as far as a machine without a Docker engine allows (docs/deploy.md).

* Static rules, read from the Dockerfile and docs/deploy.md: a non-root ``USER`` (the uid ``useradd``
  creates), ``EXPOSE`` = the ports of the documented container config (and of the Kubernetes example),
  ``STOPSIGNAL SIGTERM``, a ``HEALTHCHECK`` on the admin port's ``/livez``, no secret baked in, the build
  copying what the wheel build needs, both pip steps pinned by ``requirements.lock``.
* The build steps reproduced outside Docker: the build context assembled as ``.dockerignore`` says, each
  ``COPY`` and ``RUN`` of both stages executed as written, container paths (``/src``, ``/wheels``,
  ``/etc/sluicegate``) mapped into a temporary directory, a fresh venv of Debian's Python 3.11 standing in
  for each stage's ``python:3.11-slim`` (the ``apt-get`` step: this machine's gcc; ``useradd``: a
  throwaway uid, never a user added to this machine).
* The run: ``ENTRYPOINT`` + ``CMD`` as written, with the documented container config, as that uid
  (``setpriv``), in a fresh network namespace (the container's own loopback: ports 8080 and 9901 exactly,
  nothing else on the machine disturbed); the ``HEALTHCHECK`` command run verbatim must exit 0 once the
  server is up and non-zero once the admin listener is down; ``STOPSIGNAL`` must drain and exit 0.

The build is slow (mypyc plus the dependency wheels, ~2 min): the fixtures are shared by the tests.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
SYSTEM_PYTHON = "/usr/bin/python3.11"  # Debian's, outside /root: usable by the throwaway uid
SECRETISH = re.compile(r"KEY|SECRET|TOKEN|PASSW|CREDENTIAL", re.I)


# -- reading the Dockerfile ------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base}: no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages and their instructions (continuation lines joined, comment lines dropped, as Docker does)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert m, f"FROM {args!r}"
            stages.append(Stage(m.group(1), m.group(2) or ""))
            continue
        assert stages, f"{keyword} before FROM"
        stages[-1].instructions.append(Instruction(keyword, args))
    return stages


@dataclass
class Healthcheck:
    options: dict[str, float]
    command: str


def _seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
    assert m, f"duration {value!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def healthcheck(stage: Stage) -> Healthcheck:
    args = stage.last("HEALTHCHECK").args
    opts_text, sep, command = args.partition(" CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args!r}"
    options = {}
    for opt in opts_text.split():
        name, _, value = opt.removeprefix("--").partition("=")
        options[name] = float(value) if name == "retries" else _seconds(value)
    command = command.strip()
    assert not command.startswith("["), "expected the shell form (what the tests run with /bin/sh -c)"
    return Healthcheck(options, command)


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instruction
    return value


def useradd_uid(stage: Stage) -> int:
    for run in stage.all("RUN"):
        for cmd in split_and(run.args):
            argv = shlex.split(cmd)
            if argv and argv[0] == "useradd":
                return int(argv[argv.index("--uid") + 1])
    raise AssertionError("the image stage creates no user")


def split_and(command: str) -> list[str]:
    """``a && b && c`` -> the commands (the Dockerfile's RUN lines hold no quoted ``&&``)."""
    return [c.strip() for c in command.split("&&") if c.strip()]


# -- the documented container config ---------------------------------------------------------------

CONFIG_MARK = "# /etc/sluicegate/sluicegate.toml (container)"


def container_config_text() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DEPLOY_DOC.read_text(), re.S)
    found = [b for b in blocks if b.startswith(CONFIG_MARK)]
    assert len(found) == 1, f"docs/deploy.md needs exactly one toml block starting {CONFIG_MARK!r}"
    return str(found[0])


def listen_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


# -- static rules ----------------------------------------------------------------------------------


def test_dockerfile_static_rules() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) == 2, "a build stage and the image"
    build, image = stages
    assert build.name and image.all("COPY") and build.base == image.base == "python:3.11-slim"

    # non-root: the last USER is the uid the image stage creates, never 0/root
    uid = useradd_uid(image)
    assert uid >= 1000 and [i.args for i in image.all("USER")] == [str(uid)]
    keywords = [i.keyword for i in image.instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert "useradd" in image.all("RUN")[0].args and "--shell /usr/sbin/nologin" in image.all("RUN")[0].args

    # EXPOSE = the ports the documented container config listens on, on all interfaces
    cfg = tomllib.loads(container_config_text())
    exposed = {int(p.split("/")[0]) for i in image.all("EXPOSE") for p in i.args.split()}
    admin_host, admin_port = listen_port(cfg["admin"]["listen"])
    assert cfg["server"]["host"] == "0.0.0.0" and admin_host == "0.0.0.0"
    assert exposed == {cfg["server"]["port"], admin_port}
    # ... and the Kubernetes example in the same page runs that uid on those ports
    doc = DEPLOY_DOC.read_text()
    k8s = doc[doc.index("## Kubernetes") :]
    assert f"runAsUser: {uid}" in k8s and "runAsNonRoot: true" in k8s
    assert {int(p) for p in re.findall(r"containerPort: (\d+)", k8s)} == exposed
    assert re.search(r"livenessProbe:.*?path: /livez, port: admin", k8s, re.S)

    # SIGTERM is the drain signal of the supervisor (docs/operations.md)
    assert image.last("STOPSIGNAL").args == "SIGTERM"

    # the health check: the admin listener's /livez, never the public port
    hc = healthcheck(image)
    urls = re.findall(r"https?://[^'\"\s]+", hc.command)
    assert urls == [f"http://127.0.0.1:{admin_port}/livez"], urls
    assert {"interval", "timeout", "start-period", "retries"} <= set(hc.options)
    assert hc.options["timeout"] < hc.options["interval"]

    # no secret baked in: no ENV/ARG that looks like one, no secret file copied, no key material in RUN
    for stage in stages:
        for ins in stage.all("ENV") + stage.all("ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", ins.args) or [ins.args.split()[0]]
            assert not [n for n in names if SECRETISH.search(n)], ins
        for ins in stage.all("COPY") + stage.all("ADD"):
            assert not re.search(r"\.env\b|secret|\.pem\b|\.key\b|keys?\.txt", ins.args, re.I), ins
        for ins in stage.all("RUN"):
            assert "SLUICEGATE_FIRST_PARTY_KEYS" not in ins.args and "SECRET" not in ins.args, ins
    assert not image.all("ADD") and not build.all("ADD")

    # the build copies what the wheel build needs (test_wheel builds from the same files)
    copied = {p for ins in build.all("COPY") for p in ins.args.split()[:-1]}
    assert {"pyproject.toml", "setup.py", "README.md", "src", "requirements.lock"} <= copied, copied
    # both pip steps pinned by the lock; the image installs only the wheels built (no index)
    build_pip = " ".join(i.args for i in build.all("RUN") if "pip wheel" in i.args)
    image_pip = " ".join(i.args for i in image.all("RUN") if "pip install" in i.args)
    assert "--constraint requirements.lock" in build_pip and "SLUICEGATE_BUILD_MYPYC=require" in build_pip
    assert "--no-index" in image_pip and "--constraint /wheels/requirements.lock" in image_pip
    assert image_pip.rstrip().endswith("rm -rf /wheels")

    # the entrypoint serves the mounted config
    argv = exec_form(image.last("ENTRYPOINT")) + exec_form(image.last("CMD"))
    assert argv == ["sluicegate", "serve", "--config", "/etc/sluicegate/sluicegate.toml"]


# -- the build steps, reproduced -------------------------------------------------------------------


def dockerignored(rel: str, patterns: list[str]) -> bool:
    """Whether ``rel`` (a path in the build context) is excluded: a pattern matches it or one of
    its parent directories; ``**/`` matches at any depth (the patterns .dockerignore uses)."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        if pat.startswith("**/"):
            tail = pat[3:]
            if any(fnmatch.fnmatchcase(p, tail) for p in parts):
                return True
        elif any(fnmatch.fnmatchcase(p, pat) for p in prefixes):
            return True
    return False


def build_context(dest: Path) -> Path:
    """The repository as ``docker build .`` sends it: minus .dockerignore's patterns."""
    ignore = REPO / ".dockerignore"
    assert ignore.is_file(), ".dockerignore keeps local build products out of the image"
    lines = [ln.strip() for ln in ignore.read_text().splitlines()]
    patterns = [ln.rstrip("/") for ln in lines if ln and not ln.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "negated patterns: extend dockerignored()"
    for path in sorted(REPO.rglob("*")):
        rel = path.relative_to(REPO).as_posix()
        if path.is_dir() or dockerignored(rel, patterns):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dest


@dataclass
class StageFs:
    """A stage's file system: container paths mapped under ``root``; ``python`` its interpreter."""

    root: Path
    venv: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)

    def host(self, container_path: str) -> Path:
        assert container_path.startswith("/"), container_path
        return self.root / container_path.lstrip("/")

    def map_paths(self, command: str) -> str:
        """Absolute container paths in ``command`` -> their host paths (only the ones this stage uses)."""
        def repl(m: re.Match[str]) -> str:
            return str(self.host(m.group(0)))

        return re.sub(r"(?<![\w./-])/(?:wheels|src|etc/sluicegate)(?=[/\s]|$)", repl, command)

    def shell(self, command: str, timeout: float = 1800) -> str:
        env = {**os.environ, **self.env, "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
               "VIRTUAL_ENV": str(self.venv)}
        env.pop("PYTHONPATH", None)
        env.pop("SLUICEGATE_PURE_PYTHON", None)
        cwd = self.host(self.workdir) if self.workdir != "/" else self.root
        cwd.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=timeout)
        assert res.returncode == 0, f"{command} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return res.stdout


def run_stage(stage: Stage, fs: StageFs, context: Path, stages: dict[str, StageFs]) -> int | None:
    """Each instruction of ``stage`` on ``fs``; the uid ``useradd`` would create (None: none)."""
    uid: int | None = None
    for ins in stage.instructions:
        if ins.keyword == "WORKDIR":
            fs.workdir = ins.args
        elif ins.keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", ins.args):
                fs.env[key] = value
        elif ins.keyword == "COPY":
            args = ins.args.split()
            src_fs = None
            if args[0].startswith("--from="):
                src_fs = stages[args[0].split("=", 1)[1]]
                args = args[1:]
            *sources, dest = args
            dest_path = fs.host(dest) if dest.startswith("/") else fs.host(fs.workdir) / dest
            into_dir = dest.endswith("/") or len(sources) > 1
            for src in sources:
                origin = src_fs.host(src) if src_fs is not None else context / src
                assert origin.exists(), f"COPY {src}: not in the {'stage' if src_fs else 'build context'}"
                if origin.is_dir():  # Docker copies a directory's contents
                    shutil.copytree(origin, dest_path, dirs_exist_ok=True)
                else:
                    target = dest_path / origin.name if into_dir else dest_path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target)
        elif ins.keyword == "RUN":
            for cmd in split_and(ins.args):
                argv0 = shlex.split(cmd)[0]
                if argv0 == "apt-get" or cmd.startswith("rm -rf /var/lib/apt/lists"):
                    continue  # build-essential: this machine's gcc stands in (the fixture checks it is there)
                if argv0 == "useradd":
                    argv = shlex.split(cmd)
                    uid = int(argv[argv.index("--uid") + 1])
                    continue  # never a user added to this machine: a throwaway uid instead
                fs.shell(fs.map_paths(cmd))
    return uid


@dataclass
class Image:
    fs: StageFs
    uid: int
    stage: Stage


def _fresh_venv(path: Path) -> Path:
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(path)], check=True, capture_output=True, timeout=300)
    return path


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    if os.geteuid() != 0:
        pytest.fail("tests/packaging/test_dockerfile.py needs root (uid switch, network namespace), as CI has")
    for tool in (SYSTEM_PYTHON, "gcc", "setpriv", "unshare", "nsenter", "ip"):
        assert shutil.which(tool), f"{tool} is needed (Debian: python3.11-venv python3.11-dev gcc util-linux iproute2)"
    # a directory the throwaway uid can read (pytest's tmp_path is private to root)
    root = Path(tempfile.mkdtemp(prefix="sg-dockerfile-", dir="/tmp"))
    root.chmod(0o755)
    try:
        stages = parse_dockerfile(DOCKERFILE.read_text())
        context = build_context(root / "context")
        done: dict[str, StageFs] = {}
        for i, stage in enumerate(stages[:-1]):
            fs = StageFs(root / f"stage-{i}", _fresh_venv(root / f"python-{i}"))
            run_stage(stage, fs, context, done)
            done[stage.name or str(i)] = fs
        last = stages[-1]
        fs = StageFs(root / "image", _fresh_venv(root / "python-image"))
        uid = run_stage(last, fs, context, done)
        assert uid is not None
        yield Image(fs, uid, last)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_image_installs_the_compiled_wheel_at_the_locked_versions(image: Image) -> None:
    fs = image.fs
    assert not fs.host("/wheels").exists(), "the image stage removes /wheels after installing"
    out = fs.shell("sluicegate version --verbose")
    assert "fast paths: compiled (mypyc)" in out.splitlines(), out
    frozen = json.loads(fs.shell("python -m pip list --format=json"))
    pins = _lock()
    installed = {re.sub(r"[-_.]+", "-", d["name"]).lower(): d["version"] for d in frozen}
    assert installed.pop("sluicegate") == "0.1.0"
    for name in ("pip", "setuptools"):  # the venv's own (the base image brings its own pip)
        installed.pop(name, None)
    assert {"uvicorn", "uvloop", "httptools", "pydantic", "prometheus-client"} <= set(installed)
    off = {n: (v, pins.get(n)) for n, v in installed.items() if pins.get(n) != v}
    assert not off, f"installed versions that are not requirements.lock's: {off}"


# -- the run ---------------------------------------------------------------------------------------


class Netns:
    """A fresh network namespace (loopback up) held by a sleeping process; commands enter it."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"])
        path = f"/proc/{self.holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(path) == os.readlink("/proc/self/ns/net"):  # until unshare has switched
            assert self.holder.poll() is None and time.monotonic() < deadline, "unshare --net failed (root needed)"
            time.sleep(0.01)
        self.path = path
        subprocess.run(self.enter(["ip", "link", "set", "lo", "up"]), check=True, timeout=10)

    def enter(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


def as_user(uid: int, argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--", *argv]


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]


def test_container_run_healthcheck_and_stop(image: Image) -> None:
    fs, uid, stage = image.fs, image.uid, image.stage
    config = fs.host("/etc/sluicegate/sluicegate.toml")
    assert config.parent.is_dir(), "the image stage creates /etc/sluicegate"
    config.write_text(container_config_text())
    env = {"PATH": f"{fs.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", **fs.env,
           "TMPDIR": "/tmp"}
    hc = healthcheck(stage)
    check = fs.map_paths(" ".join(shlex.quote(a) for a in
                                  ["sluicegate", "check-config", "/etc/sluicegate/sluicegate.toml"]))
    argv = [fs.map_paths(a) for a in exec_form(stage.last("ENTRYPOINT")) + exec_form(stage.last("CMD"))]
    ns = Netns()
    server: subprocess.Popen[bytes] | None = None
    try:
        res = subprocess.run(ns.enter(as_user(uid, ["/bin/sh", "-c", check])), env=env, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr

        def healthcheck_rc() -> int:
            """The HEALTHCHECK command as Docker runs it: /bin/sh -c, as the image's USER, in its network."""
            r = subprocess.run(ns.enter(as_user(uid, ["/bin/sh", "-c", hc.command])), env=env, cwd="/",
                               capture_output=True, timeout=hc.options["timeout"] + 5)
            return r.returncode

        assert healthcheck_rc() != 0  # nothing listens yet
        started = time.monotonic()
        log = fs.root / "server.log"  # a file, not a pipe: nothing the server writes can block it
        with log.open("wb") as sink:
            server = subprocess.Popen(ns.enter(as_user(uid, argv)), env=env, cwd="/", stdout=sink,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        budget = hc.options["start-period"] + hc.options["interval"] * hc.options["retries"]
        while (rc := healthcheck_rc()) != 0:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() - started < budget, f"not healthy within {budget:g}s (start period + retries)"
            time.sleep(0.5)
        took = time.monotonic() - started
        # it runs as the image's USER, workers included, and serves both listeners
        pids = [server.pid, *map(int, Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split())]
        assert [_uid_of(p) for p in pids] == [uid] * len(pids) and len(pids) >= 2
        probe = ("import urllib.request as r, urllib.error as e, sys\n"
                 "def get(u):\n"
                 "    try:\n        return r.urlopen(u, timeout=5).status\n"
                 "    except e.HTTPError as x:\n        return x.code\n"
                 "print(get('http://127.0.0.1:9901/readyz'), get('http://127.0.0.1:8080/'))\n")
        out = subprocess.run(ns.enter(as_user(uid, [str(fs.venv / "bin" / "python"), "-c", probe])), env=env,
                             capture_output=True, text=True, timeout=30)
        ready, public = out.stdout.split()
        assert ready == "503", out  # the origin is unreachable: live, not ready
        assert public == "421", out  # the public listener answers (127.0.0.1 is not a public host)
        # STOPSIGNAL: drain and exit 0
        server.send_signal(getattr(signal, stage.last("STOPSIGNAL").args))
        assert server.wait(timeout=40) == 0, log.read_text(errors="replace")[-3000:]
        rc = healthcheck_rc()
        assert rc not in (0, 2), f"HEALTHCHECK gave {rc} with the admin listener down (2 is reserved by Docker)"
        assert took < hc.options["start-period"], f"healthy after {took:.1f}s"
    finally:
        if server is not None:  # a failed test leaves no supervisor or worker behind
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait()
        ns.close()
