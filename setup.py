"""Build: compile sluicegate's hot modules with mypyc, with pure Python as the automatic fallback.

Metadata lives in pyproject.toml; this file only adds the compiled extension modules (the way black
and mypy ship their mypyc builds). The modules are listed in src/sluicegate/_compiled.py (one place).

* ``pip install .`` / ``pip wheel .``: the wheel holds the ``.py`` sources **and** the compiled
  modules (``sluicegate/**/<module>.cpython-*.so`` + the shared ``sluicegate/_fast__mypyc*.so``);
* ``pip install -e .``: the compiled modules are built into src/ beside their sources (stale ones from
  an earlier build are removed first; the run time ignores any whose source changed since);
* no working C compiler, mypyc missing or failing: a warning, and the same package without compiled
  modules (pure Python). The reason goes into the build manifest ``sluicegate/_fastpaths.json``,
  which ``sluicegate version --verbose`` prints.

``SLUICEGATE_BUILD_MYPYC``: ``auto`` (default, as above), ``0`` (never compile: fast pure build),
``require`` (fail the build instead of falling back). See docs/build.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import runpy
import sys
import sysconfig
import tempfile
import traceback
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
SRC = Path("src")  # relative: the build backend runs in the project directory, mypyc wants relative paths
_listed = runpy.run_path(str(HERE / "src" / "sluicegate" / "_compiled.py"))
COMPILED_MODULES: tuple[str, ...] = _listed["COMPILED_MODULES"]
GROUP: str = _listed["GROUP"]
MANIFEST = "_fastpaths.json"
MODE = os.environ.get("SLUICEGATE_BUILD_MYPYC", "auto").strip().lower() or "auto"
if MODE not in ("auto", "0", "require"):
    sys.exit(f"SLUICEGATE_BUILD_MYPYC={MODE!r}: expected auto, 0 or require")


def _source(module: str) -> Path:
    return SRC.joinpath(*module.split(".")).with_suffix(".py")


def _say(msg: str) -> None:
    print(f"sluicegate build: {msg}", file=sys.stderr, flush=True)


def _compiler_problem() -> str | None:
    """None when the configured C compiler (``CC``/sysconfig) compiles and links a Python extension stub."""
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler
    except ImportError:  # setuptools without the vendored distutils
        from distutils.ccompiler import new_compiler  # type: ignore[no-redef]
        from distutils.sysconfig import customize_compiler  # type: ignore[no-redef]
    cc = new_compiler()
    customize_compiler(cc)
    with tempfile.TemporaryDirectory(prefix="sg-cc-probe-") as tmp:
        probe = Path(tmp) / "probe.c"
        probe.write_text("#include <Python.h>\nint sg_probe(void) { return Py_IsInitialized(); }\n")
        try:
            objs = cc.compile([str(probe)], output_dir=tmp, include_dirs=[sysconfig.get_paths()["include"]])
            cc.link_shared_object(objs, str(Path(tmp) / "probe.so"))
        except Exception as exc:
            text = " ".join(str(exc).split())
            status = re.search(r"exit (?:status|code) (\d+)", text)
            text = f"exit status {status.group(1)}" if status else text[:160]
            return f"no working C compiler ({(getattr(cc, 'compiler_so', None) or ['?'])[0]}: {text})"
    return None


_EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
_decided: tuple[list[Any], str | None] | None = None
_digests: dict[str, str] = {}  # of the sources as mypyc read them (an edit during the build makes it stale)


def _mypyc_extensions() -> tuple[list[Any], str | None]:
    """(extensions, None) or ([], why pure): decided once per build (commands may be re-created)."""
    global _decided
    if _decided is None:
        _decided = _decide_extensions()
    return _decided


def _decide_extensions() -> tuple[list[Any], str | None]:
    if MODE == "0":
        return [], "SLUICEGATE_BUILD_MYPYC=0 at build time"
    problem = _compiler_problem()
    if problem is None:
        try:
            from mypyc.build import mypycify
        except ImportError as exc:
            problem = f"mypyc not available ({exc})"
    if problem is None:
        out = io.StringIO()
        _digests.update({m: hashlib.sha256(_source(m).read_bytes()).hexdigest() for m in COMPILED_MODULES})
        try:
            with contextlib.redirect_stdout(out):  # mypy prints its errors, then exits
                exts = mypycify([str(_source(m)) for m in COMPILED_MODULES], group_name=GROUP, opt_level="3",
                                strip_asserts=False, target_dir=str(Path("build") / "mypyc"))
            return list(exts), None
        except BaseException as exc:
            errors = [line for line in out.getvalue().splitlines() if ": error:" in line]
            detail = "; ".join(errors[:3]) or f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            problem = f"mypyc failed ({detail[:300]})"
        finally:
            sys.stderr.write(out.getvalue())  # mypyc's warnings, or the errors in full
    if MODE == "require":
        raise SystemExit(f"sluicegate build: SLUICEGATE_BUILD_MYPYC=require but {problem}")
    _say(f"building pure Python: {problem}")
    return [], problem


def _remove_extensions(pkg_dir: Path) -> None:
    if pkg_dir.is_dir():
        for p in pkg_dir.rglob(f"*{_EXT_SUFFIX}"):
            p.unlink()


_BUILD_COMMANDS = {"build", "build_ext", "bdist", "bdist_wheel", "bdist_egg", "editable_wheel", "develop", "install"}


class _BuildMypyc(build_ext):
    """build_ext that runs mypyc first, and falls back to pure Python instead of failing."""

    def finalize_options(self) -> None:
        # egg_info/dist_info/sdist finalize build_ext too (for its source list): mypyc runs only for a build.
        building = bool(_BUILD_COMMANDS & set(self.distribution.commands))
        self.distribution.ext_modules = _mypyc_extensions()[0] if building else []
        super().finalize_options()

    def run(self) -> None:
        inplace = bool(self.inplace or getattr(self, "editable_mode", False))
        src_pkg = Path(self.get_finalized_command("build_py").get_package_dir("sluicegate"))
        build_pkg = Path(self.build_lib) / "sluicegate"
        # Every extension module under the package is a product of this build: remove those of an earlier
        # build (also of modules no longer listed) so that none can shadow its .py.
        _remove_extensions(build_pkg)
        if inplace:
            _remove_extensions(src_pkg)
        reason = _mypyc_extensions()[1]
        if self.extensions:
            try:
                super().run()
            except Exception as exc:
                if MODE == "require":
                    raise
                traceback.print_exc()
                reason = f"compiling failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                _say(f"building pure Python: {reason}")
                _remove_extensions(build_pkg)
                if inplace:
                    _remove_extensions(src_pkg)
        manifest: dict[str, Any]
        if reason is None:
            from mypy.version import __version__ as mypy_version

            manifest = {"compiled": True, "mypy": mypy_version, "modules": dict(_digests)}
            _say(f"compiled {len(COMPILED_MODULES)} modules with mypyc (mypy {mypy_version})")
        else:
            manifest = {"compiled": False, "reason": reason}
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        for d in [build_pkg, src_pkg] if inplace else [build_pkg]:
            d.mkdir(parents=True, exist_ok=True)
            (d / MANIFEST).write_text(text, encoding="utf-8")


class _PlatformDistribution(Distribution):
    """Always a platform wheel with a build_ext step (the extensions are only known when it runs)."""

    def has_ext_modules(self) -> bool:
        return True


setup(distclass=_PlatformDistribution, cmdclass={"build_ext": _BuildMypyc})
