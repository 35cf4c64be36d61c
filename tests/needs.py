"""Suites that need a service or a browser: skipped with the reason on a laptop, failed in CI."""
import os
import shutil
import socket

import pytest


def need(available, reason):
    """Skip the test when `available` is false, unless CI is set: a green CI means every suite ran."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this suite, but {reason}", pytrace=False)
    pytest.skip(reason)


def listening(port, host="127.0.0.1"):
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_program(name):
    need(shutil.which(name) is not None, f"{name} is not installed")
