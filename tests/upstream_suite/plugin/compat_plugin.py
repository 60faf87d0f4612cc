"""pytest plugin for the upstream suite run (tests/upstream_suite/run.py).

Bridges only the pytest-asyncio versions: upstream 2.1.0's tests were written
for pytest-asyncio < 0.23, we have 1.x. Nothing here touches the classes
under test.
"""

import asyncio

import pytest


@pytest.fixture
async def event_loop():
    """pytest-asyncio < 0.23's ``event_loop``: the loop the test runs in.

    Removed in pytest-asyncio 1.0. Upstream's test_add_get_delete takes it to
    run its cleanup from a finalizer (``event_loop.run_until_complete``),
    which works here as there: between the steps of a test the loop is not
    running, and it is closed only after the test's own finalizers.
    """
    yield asyncio.get_running_loop()
