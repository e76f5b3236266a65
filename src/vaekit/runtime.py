"""Runtime: where and how the numbers are computed — device, threads, precision (autocast) and seeds.

Every job asks this module, so ``device="auto"`` means the same everywhere: CUDA if PyTorch sees a GPU, then Apple's
MPS, else the CPU. ``precision="auto"`` is bfloat16 autocast (matmuls in bf16, reductions and weights in fp32) where
the hardware multiplies bf16 natively — CUDA GPUs with bf16 support, CPUs with AVX512-BF16 or AMX — and fp32
elsewhere. Threads: an explicit count wins, then ``OMP_NUM_THREADS``, then a size rule measured in
``benchmarks/threads.py`` (small models do not gain from a second thread and lose a lot when cores are shared;
large ones get the cores the load average says are idle).
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import os
import random
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from vaekit.errors import VaekitError

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_SEED = 2**63 - 1
SMALL_MODEL_PARAMS = 250_000  # below this many parameters one thread is as fast as two (benchmarks/threads.py)


# --- progress --------------------------------------------------------------------------------------------------------
def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar where someone can watch it (a terminal, or a notebook through ``tqdm.auto``), else None: in a log
    file or a pipe a bar is one frozen line per epoch. ``kwargs`` go to tqdm."""
    from tqdm.auto import tqdm

    notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)  # tqdm.auto picked the widget
    stream = kwargs.get("file") or sys.stderr
    if not notebook and not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return tqdm(**kwargs)


# --- device ----------------------------------------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' → cuda if available, else mps, else cpu; 'cuda' / 'cuda:N' / 'mps' are checked to exist."""
    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise VaekitError("device 'mps' requested, but this PyTorch sees no Apple GPU (use --device cpu or auto)")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise VaekitError(f"device {name!r} requested, but this PyTorch sees no CUDA GPU "
                              "(use --device cpu or auto)")
        if ":" in name:
            idx = name.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise VaekitError(f"device {name!r}: there are {torch.cuda.device_count()} CUDA device(s), "
                                  f"numbered 0..{torch.cuda.device_count() - 1}")
        return torch.device(name)
    raise VaekitError(f"device {device!r} is not one of {list(DEVICE_NAMES)}")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


# --- precision -------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.split(":", 1)[1].split()) if ":" in line else frozenset()


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def _device_type(device: str | torch.device) -> str:
    """'cpu' / 'cuda' / 'mps' / 'auto' of a device or its name ('cuda:1' → 'cuda'), without resolving it."""
    return device.type if isinstance(device, torch.device) else str(device).split(":")[0]


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """'auto' → 'bf16' where the device multiplies bf16 natively, else 'fp32'; 'fp32' and 'bf16' are kept ('bf16'
    forced on a CPU that only emulates it warns: it runs, several times slower)."""
    if precision not in PRECISIONS:
        raise VaekitError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    kind = _device_type(device)
    if precision == "bf16" and not native_bf16() and (kind == "cpu" or kind == "auto"
                                                      and resolve_device("auto").type == "cpu"):
        warnings.warn("precision 'bf16' on a CPU without native bfloat16 (no AVX512-BF16/AMX): PyTorch emulates it, "
                      "about 8x slower than fp32 (measured: a 784-512-256 MLP step 92 vs 11 ms); 'auto' picks fp32",
                      RuntimeWarning, stacklevel=2)
    if precision != "auto":
        return precision
    dev = resolve_device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if dev.type == "cpu":
        return "bf16" if native_bf16() else "fp32"
    return "fp32"


def autocast(precision: str, device: str | torch.device = "cpu") -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on the device (matmuls in bfloat16, reductions in float32) or a no-op for fp32."""
    if precision == "bf16":
        return torch.autocast(_device_type(device), dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- threads ---------------------------------------------------------------------------------------------------------
def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_threads(n_threads: int | None = None, n_params: int | None = None) -> int:
    """Explicit count > ``OMP_NUM_THREADS`` > one thread for small models (< 250k parameters), else the idle cores
    (this process's cores minus the rounded 1-minute load average, at least one)."""
    if n_threads is not None and n_threads != 0:
        if not isinstance(n_threads, (int, np.integer)) or isinstance(n_threads, bool) or n_threads < 1:
            raise VaekitError(f"threads must be a whole number >= 1 (or 0/None for automatic), got {n_threads!r}")
        return int(n_threads)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if n_params is not None and n_params < SMALL_MODEL_PARAMS:
        return 1
    return max(1, available_cores() - busy_cores())


def busy_cores() -> int:
    """Cores other work keeps busy: the 1-minute load average, rounded (0 where the OS does not report one).
    A thread pool larger than the idle cores spins against the other processes (benchmarks/threads.py: 7×)."""
    try:
        return int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        return 0


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` PyTorch intra-op threads and ``n`` BLAS/OpenMP threads, restoring both afterwards."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


# --- seeds -----------------------------------------------------------------------------------------------------------
def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed is a whole number in 0..2⁶³−1."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise VaekitError(f"{name} must be a whole number in 0..2^63-1, got {seed!r}")
    return int(seed)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) global generators before anything random happens."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A private seeded generator on ``device`` (does not touch the global RNG)."""
    dev = device if isinstance(device, torch.device) else torch.device(device)
    return torch.Generator(device=dev).manual_seed(check_seed(seed))


# --- distributed (torchrun) ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class World:
    """This process's place in a ``torchrun`` job: rank, world size and local rank (1 process: 0, 1, 0)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes files, prints and draws progress bars."""
        return self.rank == 0


def _env_world() -> World:
    def num(name: str, default: int) -> int:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        if not raw.isdigit():
            raise VaekitError(f"environment variable {name}={raw!r} is not a whole number (set by torchrun)")
        return int(raw)

    w = World(num("RANK", 0), num("WORLD_SIZE", 1), num("LOCAL_RANK", 0))
    if w.size < 1 or not 0 <= w.rank < w.size:
        raise VaekitError(f"RANK={w.rank} and WORLD_SIZE={w.size} do not fit together (set by torchrun)")
    return w


def world() -> World:
    """The current job: the process group if one is initialised, else what torchrun's environment says."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_world().local_rank)
    return _env_world()


def init_distributed(device: str | torch.device = "auto") -> World:
    """Join the ``torchrun`` process group (gloo on CPU, NCCL on CUDA) when WORLD_SIZE > 1; idempotent; a no-op for
    one process. Under torchrun ``device='auto'``/``'cuda'`` means this process's GPU, ``cuda:LOCAL_RANK``."""
    import torch.distributed as dist

    w = _env_world()
    if w.size == 1 or (dist.is_available() and dist.is_initialized()):
        return world()
    if not dist.is_available():
        raise VaekitError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(w.local_rank)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    atexit.register(shutdown_distributed)
    return world()


def shutdown_distributed(timeout_s: float = 60.0) -> None:
    """Leave the process group: wait (at most ``timeout_s``) until every rank is here, then destroy it. Without
    this a rank could tear down its gloo connections while another still used them, and that one aborted in
    its exit ("terminate called without an active exception"); registered at exit by :func:`init_distributed`."""
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=timeout_s))
        else:
            dist.barrier()
    except RuntimeError:  # a rank has gone (it failed): do not wait for it
        pass
    dist.destroy_process_group()


def distributed_device(device: str | torch.device = "auto") -> torch.device:
    """:func:`resolve_device`, with each torchrun process on its own GPU (``cuda:LOCAL_RANK``)."""
    dev = resolve_device(device)
    w = _env_world()
    if dev.type == "cuda" and w.size > 1 and dev.index is None:
        return torch.device("cuda", w.local_rank)
    return dev


def on_main(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on rank 0 only and hand its result — or its :class:`VaekitError` — to every rank, so all ranks
    return or raise together (one process: just ``fn(...)``)."""
    import torch.distributed as dist

    w = world()
    if w.size == 1 or not dist.is_initialized():
        return fn(*args, **kwargs)
    box: list[Any] = [None]
    if w.main:
        try:
            box[0] = ("ok", fn(*args, **kwargs))
        except VaekitError as e:
            box[0] = ("error", type(e).__name__, str(e))
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "error":
        from vaekit import errors

        raise getattr(errors, box[0][1], VaekitError)(box[0][2])
    return box[0][1]


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    import torch.distributed as dist

    if world().size > 1 and dist.is_initialized():
        dist.barrier()


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Sum or max of ``t`` over the ranks, in place (unchanged for one process)."""
    import torch.distributed as dist

    if world().size > 1 and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t


def all_gather(t: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's tensor ``t`` (same shape and dtype on all ranks), in rank order (``[t]`` for one process)."""
    import torch.distributed as dist

    w = world()
    if w.size == 1 or not dist.is_initialized():
        return [t]
    out = [torch.empty_like(t) for _ in range(w.size)]
    dist.all_gather(out, t.contiguous())
    return out
