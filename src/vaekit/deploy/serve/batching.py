"""Micro-batching: concurrent requests to the same artifact and endpoint share one forward pass.

Each (artifact, endpoint) has a lane. A request's checked rows join its lane; the lane's worker takes the first
waiting request, waits at most ``max_wait`` seconds for others (stopping early once ``max_rows`` rows wait), runs the
whole group as one ``compute`` call on the single compute thread and hands each request its own slice of the
result. Rows go through the models in fixed blocks (:data:`vaekit.deploy.serve.ops.BLOCK`), so a batched answer
equals the answer the request gets alone to float32 rounding (often byte for byte: see :mod:`.ops`); sampled latents
come from each request's own seeded generator, never from a shared stream. If a group fails, each of its requests is run alone, so an error
reaches only the request that caused it. Endpoints that are not batched use the same compute thread, one request at
a time. ``close`` stops new requests (503) and drains: every request already queued is answered first.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vaekit.deploy.serve.ops import Work


class ServiceClosing(RuntimeError):
    """The service is shutting down: new requests are refused (503)."""


@dataclass
class _Lane:
    fn: Callable[[list[Work]], list[Any]]
    items: collections.deque[tuple[Work, asyncio.Future[Any]]] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    rows: int = 0


@dataclass
class BatchStats:
    """Per lane: requests answered and compute passes run (passes < requests: batching happened)."""

    requests: dict[str, int] = field(default_factory=dict)
    passes: dict[str, int] = field(default_factory=dict)
    largest: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n_requests: int) -> None:
        self.requests[key] = self.requests.get(key, 0) + n_requests
        self.passes[key] = self.passes.get(key, 0) + 1
        self.largest[key] = max(self.largest.get(key, 0), n_requests)


class MicroBatcher:
    """Lanes of waiting requests and one compute thread (see the module docstring)."""

    def __init__(self, max_rows: int = 256, max_wait: float = 0.002, enabled: bool = True) -> None:
        self.max_rows, self.max_wait, self.enabled = max_rows, max_wait, enabled
        self.stats = BatchStats()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vaekit-compute")
        self._lanes: dict[str, _Lane] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    # --- running work -------------------------------------------------------------------------------------------
    def _run(self, fn: Callable[[list[Work]], list[Any]], works: list[Work]) -> list[tuple[bool, Any]]:
        """On the compute thread: ``fn`` on the group → (ok, result or exception) per work; a failed group is run
        again one work at a time."""
        try:
            out = fn(works)
            if len(out) != len(works):
                raise RuntimeError(f"a compute step returned {len(out)} results for {len(works)} requests")
            return [(True, r) for r in out]
        except Exception as e:  # noqa: BLE001 -- handed to the request(s) it belongs to
            if len(works) == 1:
                return [(False, e)]
        return [self._run(fn, [w])[0] for w in works]

    async def run(self, key: str, fn: Callable[[list[Work]], list[Any]], work: Work, batched: bool) -> Any:
        """The result of ``work`` (raises what its computation raised); micro-batched when ``batched``."""
        if self._closing:
            raise ServiceClosing("the service is shutting down")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a test client without a lifespan): fresh lanes
            self._loop, self._lanes = loop, {}
        if not (batched and self.enabled):
            ((ok, res),) = await loop.run_in_executor(self._executor, self._run, fn, [work])
            self.stats.add(key, 1)
            if ok:
                return res
            raise res
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(fn)
            lane.task = loop.create_task(self._serve(key, lane))
        fut: asyncio.Future[Any] = loop.create_future()
        lane.items.append((work, fut))
        lane.rows += work.rows
        lane.wake.set()
        return await fut

    async def _serve(self, key: str, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not lane.items:
                if self._closing:
                    return
                lane.wake.clear()
                await lane.wake.wait()
            deadline = loop.time() + self.max_wait
            while lane.rows < self.max_rows and not self._closing:
                left = deadline - loop.time()
                if left <= 0:
                    break
                lane.wake.clear()
                try:
                    await asyncio.wait_for(lane.wake.wait(), left)
                except TimeoutError:
                    break
            group: list[tuple[Work, asyncio.Future[Any]]] = []
            rows = 0
            while lane.items and (not group or rows + lane.items[0][0].rows <= self.max_rows):
                item = lane.items.popleft()
                group.append(item)
                rows += item[0].rows
            lane.rows -= rows
            try:
                results = await loop.run_in_executor(self._executor, self._run, lane.fn, [w for w, _ in group])
            except BaseException as e:  # noqa: BLE001 -- the executor itself failed (shut down): fail the group
                results = [(False, e)] * len(group)
            self.stats.add(key, len(group))
            for (_, fut), (ok, res) in zip(group, results):
                if not fut.done():
                    fut.set_result(res) if ok else fut.set_exception(res)

    async def close(self) -> None:
        """Refuse new requests, answer every queued one, then stop the lanes and the compute thread."""
        self._closing = True
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.wake.set()
        tasks = [lane.task for lane in lanes if lane.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)

    @property
    def closed(self) -> bool:
        return self._closing
