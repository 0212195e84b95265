"""Small helpers shared by tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

# Builds a backend's QuantizeRequest: (source, work_dir, format, **options).
RequestFactory = Callable[..., Any]


def wait_for(
    predicate: Callable[[], Any], *, timeout_s: float = 120, interval_s: float = 0.2
) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"condition not met within {timeout_s} s")
