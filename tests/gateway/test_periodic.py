"""The gateway's one periodic-task loop (API key reloads and dead-letter flushes run on it)."""

import asyncio

import pytest

from gateway.periodic import PeriodicTask


def test_steps_repeat_until_stopped_and_a_failing_step_does_not_end_the_loop():
    calls: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("warehouse down")

    async def scenario() -> tuple[int, int, bool]:
        task = PeriodicTask("test", 0.01, step)
        task.start()
        while len(calls) < 5:  # the failure at the second call did not stop it
            await asyncio.sleep(0.005)
        await task.stop()
        stopped_at = len(calls)
        await asyncio.sleep(0.05)
        return stopped_at, len(calls), task.running

    stopped_at, later, running = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert stopped_at >= 5
    assert later == stopped_at  # nothing runs after stop()
    assert not running


def test_the_first_step_waits_one_interval_and_start_twice_is_refused():
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        task = PeriodicTask("test", 0.2, lambda: asyncio.sleep(0, calls.append(loop.time())))
        began = loop.time()
        task.start()
        with pytest.raises(RuntimeError, match="already running"):
            task.start()
        await asyncio.sleep(0.1)
        assert calls == []
        while not calls:
            await asyncio.sleep(0.01)
        await task.stop()
        assert calls[0] - began >= 0.19

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_a_non_positive_interval_is_refused():
    with pytest.raises(ValueError, match="interval_s"):
        PeriodicTask("test", 0, lambda: asyncio.sleep(0))
