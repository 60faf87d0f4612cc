"""TraefikSupervisor's restart backoff, with a real process that always exits at once.

(Restarts of a real traefik are in test_faults.py.)
"""

from __future__ import annotations

import asyncio
import logging

from traefik_proxy.traefik_process import FIRST_BACKOFF, MAX_BACKOFF, TraefikSupervisor


async def test_restart_delays_double_while_restarts_fail_and_reset_after_one_serves(tmp_path):
    async def no_wait(delay: float) -> None:
        """Takes no time; the supervisor itself keeps the delays in restart_delays."""
        await asyncio.sleep(0)

    supervisor = TraefikSupervisor(
        "false",  # exits at once, like a traefik that cannot start
        str(tmp_path / "traefik.toml"),
        str(tmp_path / "traefik.pid"),
        {},
        logging.getLogger("test.supervisor"),
        sleep=no_wait,
    )
    restarts = 0

    async def until_serving():
        nonlocal restarts
        restarts += 1
        await supervisor.process.wait()
        if restarts != 9:  # the 9th restart "serves" (and then dies again)
            supervisor.raise_if_exited()

    await supervisor.launch()
    supervisor.watch(until_serving)
    while len(supervisor.restart_delays) < 11:
        await asyncio.sleep(0.01)
    await supervisor.stop()
    assert list(supervisor.restart_delays)[:11] == [
        0.5,
        1,
        2,
        4,
        8,
        16,
        30,
        30,
        30,  # restarts 1-8 fail, the 9th serves
        FIRST_BACKOFF,
        1,
    ]
    assert MAX_BACKOFF == 30
    assert supervisor.process is None
    assert not (tmp_path / "traefik.pid").exists()
