"""``sluicegate check-site`` argument and set-up errors: exit status 2 and a one-line reason."""

from __future__ import annotations

import pytest

from sluicegate.cli import main
from tests.support.servers import free_port


def test_pages_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-site", "http://127.0.0.1:1/", "--pages", "0"]) == 2
    assert "--pages must be at least 1" in capsys.readouterr().err


def test_missing_browser_is_a_setup_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-site", "http://127.0.0.1:1/", "--chromium", "/nonexistent/chromium"]) == 2
    assert "apt-get install -y chromium" in capsys.readouterr().err


def test_unreachable_site_is_a_setup_error(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["check-site", f"http://127.0.0.1:{port}/", "--chromium", "/bin/sh"]) == 2
    assert "is not reachable" in capsys.readouterr().err


def test_help_lists_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check-site", "--help"])
    out = capsys.readouterr().out
    assert "--proxy-url" in out and "--forms" in out and "--pages" in out
