"""Suite-wide guards."""

from __future__ import annotations

import os

import pytest

_POLICY = os.sched_getscheduler(0)


@pytest.fixture(autouse=True)
def _scheduling_policy_unchanged(request):
    """No test may leave the process on another scheduling policy: child processes inherit it.

    A test that encoded AV1 once left pytest on SCHED_FIFO (see ``test_media._same_scheduling``),
    and every later multi-process test crawled.
    """
    yield
    now = os.sched_getscheduler(0)
    if now != _POLICY:
        os.sched_setscheduler(0, _POLICY, os.sched_param(0))
        pytest.fail(f"{request.node.nodeid} left the process on scheduling policy {now} (was {_POLICY})")
