"""sluicegate: a streaming edge proxy (publisher rewriting proxy + inference gateway)."""

from sluicegate import buildinfo as _buildinfo

__version__ = "0.1.0"

# Compiled (mypyc) or pure-Python hot modules: chosen on first import of one of them (see buildinfo).
_buildinfo.install()
