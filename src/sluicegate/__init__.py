"""sluicegate: a streaming edge proxy (publisher rewriting proxy + inference gateway)."""

__version__ = "0.1.0"
