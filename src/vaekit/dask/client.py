"""Dask plumbing: the lazy import, the active Client, shipping an object once per worker, connecting the CLI."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from vaekit.errors import VaekitError

INSTALL = "pip install vaekit[dask]"
CONNECT_TIMEOUT_S = 10


def require_dask() -> tuple[ModuleType, ModuleType]:
    """(dask, dask.dataframe), or a one-line VaekitError saying how to install them."""
    try:
        import dask
        import dask.dataframe as dd
    except ImportError:
        raise VaekitError(f"Dask is not installed; install the extra: {INSTALL}") from None
    return dask, dd


def client_or_none() -> Any:
    """The active ``distributed`` Client, or None (no distributed installed, no Client made, or another scheduler
    chosen for the block with ``dask.config.set(scheduler=...)``)."""
    try:
        import dask
        from distributed import default_client
    except ImportError:
        return None
    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return None
    try:
        return default_client()
    except ValueError:  # "No clients found"
        return None


def ship(obj: Any, kind: str) -> Any:
    """A graph reference to ``obj`` that reaches each worker once: a Future broadcast to every worker of the active
    Client (``scatter(broadcast=True)``), else a ``dask.delayed`` value held once by the graph."""
    dask = require_dask()[0]
    client = client_or_none()
    if client is not None:
        return client.scatter(obj, broadcast=True, hash=False)
    return dask.delayed(obj, name=f"vaekit-{kind}-{uuid.uuid4().hex}", traverse=False)


@contextlib.contextmanager
def connect(address: str | None) -> Iterator[Any]:
    """A Client for the block: ``None`` → none (Dask's default scheduler, or a Client the caller made);
    ``'local'`` / ``'local:N'`` → a LocalCluster of N worker processes (default: one per core), one thread each;
    otherwise the address of a running scheduler (``tcp://host:8786``)."""
    if address is None:
        yield client_or_none()
        return
    require_dask()
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise VaekitError(f"Dask's distributed scheduler is not installed; install the extra: {INSTALL}") from None
    address = str(address).strip()
    if address == "local" or address.startswith("local:"):
        n = address.split(":", 1)[1] if ":" in address else ""
        if n and (not n.isdigit() or int(n) < 1):
            raise VaekitError(f"--dask {address!r}: expected 'local', 'local:N' (N >= 1 workers) or a scheduler address")
        with LocalCluster(n_workers=int(n) if n else None, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as e:
        msg = " ".join(str(e).split()) or e.__class__.__name__
        raise VaekitError(f"--dask {address!r}: cannot reach a Dask scheduler there ({msg})") from None
    try:
        yield client
    finally:
        client.close()
