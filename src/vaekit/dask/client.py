"""Dask plumbing: the lazy import, the active Client, shipping an object once per worker, connecting the CLI."""
from __future__ import annotations

import contextlib
import threading
import uuid
from collections import OrderedDict
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


OPENED_KEEP = 4  # parcels a process keeps opened; beyond that the least recently opened one is dropped
_opened: OrderedDict[str, Any] = OrderedDict()
_opened_lock = threading.Lock()


def _parcel(token: str, payload: bytes) -> Parcel:
    return Parcel(None, token, payload)


class Parcel:
    """An object that travels as ``(token, bytes)`` and is rebuilt at most once per process, however often its bytes
    arrive: Dask's Active Memory Manager drops spare replicas of a broadcast key (ReduceReplicas) while no task waits
    for them, and a worker then fetches the key again; :meth:`open` finds the first copy by its token."""

    def __init__(self, obj: Any, token: str | None = None, payload: bytes | None = None) -> None:
        self.token = token or uuid.uuid4().hex
        self._obj = obj
        self._payload = payload

    def __reduce__(self) -> tuple[Any, tuple[str, bytes]]:
        if self._payload is None:
            import cloudpickle  # a dependency of dask; pickles what the standard pickle does, and more

            self._payload = cloudpickle.dumps(self._obj)
        return _parcel, (self.token, self._payload)

    def open(self) -> Any:
        """The object: this process's copy (built from the bytes the first time, then reused; LRU of OPENED_KEEP)."""
        if self._obj is not None:
            return self._obj
        import pickle

        with _opened_lock:
            obj = _opened.get(self.token)
            if obj is None:
                obj = pickle.loads(self._payload)  # noqa: S301 - bytes this package pickled for its own workers
                _opened[self.token] = obj
                while len(_opened) > OPENED_KEEP:
                    _opened.popitem(last=False)
            _opened.move_to_end(self.token)
        self._obj = obj
        return obj


def opened(x: Any) -> Any:
    """The object a task received: a :class:`Parcel` opened, anything else as it is."""
    return x.open() if isinstance(x, Parcel) else x


def ship(obj: Any, kind: str) -> Any:
    """A graph reference to ``obj`` that is rebuilt once per worker: a :class:`Parcel` broadcast to every worker of the
    active Client (``scatter(broadcast=True)``; a worker that fetches it again reuses its copy), else a
    ``dask.delayed`` value held once by the graph. Tasks take it through :func:`opened`."""
    dask = require_dask()[0]
    client = client_or_none()
    if client is not None:
        return client.scatter(Parcel(obj), broadcast=True, hash=False)
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
