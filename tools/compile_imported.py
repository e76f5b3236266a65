"""Byte-compile the modules that vaekit, its tests and its benchmarks import, into the venv's ``__pycache__``.

pip and uv install without compiling here and, where ``PYTHONDONTWRITEBYTECODE`` is set, Python caches nothing
either, so every new process (the tests start dozens) would parse torch's sources again (~2× its import time).
``compileall`` on the whole venv (~15,000 files) took 28 s on 2 cores. Instead this imports what a process of the
suite, the CLI or a benchmark imports, with bytecode writing switched on, in one process per core: the ~3,800 files
those imports load get their ``.pyc`` as a side effect of being imported once (Python writes each atomically).
Usage: ``python tools/compile_imported.py`` (``make install`` runs it).
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

# two groups of about equal import time (torch alone is ~1,100 modules); each one's own imports follow. Modules that
# are imported only lazily are named too: torch.distributed.run (the distributed launcher), ONNX export's symbolic
# opsets, narwhals' pandas backend (scikit-learn), schemathesis' OpenAPI specs; group 0 then runs the CLI's preload
# (vaekit.cli.main.LAZY_DEPENDENCIES: torch._dynamo, which every training process imports, 2.4 s of parsing uncached)
GROUPS = [
    ["torch", "torch.distributed.run", "torch.onnx._internal.torchscript_exporter.symbolic_opset20",
     "torch.profiler._cupti_monitor", "safetensors.torch", "onnx", "onnxruntime", "constriction", "typer", "tqdm",
     "threadpoolctl", "PIL.Image", "vaekit", "vaekit.cli.main", "pytest", "xdist", "importlinter", "hypothesis",
     "schemathesis",
     "pandas", "pyarrow", "pyarrow.parquet", "matplotlib.pyplot", "dask", "dask.dataframe", "distributed"],
    ["numpy", "scipy.special", "scipy.stats", "sklearn.ensemble", "sklearn.experimental.enable_iterative_imputer",
     "sklearn.impute", "sklearn.mixture", "sklearn.neighbors", "sklearn.decomposition",
     "sklearn.utils.estimator_checks", "fastapi", "fastapi.testclient", "uvicorn", "httpx", "pydantic", "starlette",
     "pyod.models.iforest", "playwright.sync_api", "narwhals._pandas_like.dataframe", "schemathesis.specs.openapi",
     "hypothesis.strategies", "narwhals._pandas_like.namespace", "narwhals._pandas_like.group_by",
     "narwhals._interchange.dataframe", "sklearn.datasets.descr", "sklearn.datasets.data",
     "PIL.JpegImagePlugin", "PIL.PpmImagePlugin", "PIL.GifImagePlugin", "PIL.BmpImagePlugin", "PIL.features",
     "pandas.io.formats.csvs", "matplotlib.backends.backend_agg", "typer._click._textwrap"],
]


def import_all(names: list[str]) -> int:
    """Import NAMES with bytecode writing on → the number of modules loaded; a missing optional extra is skipped."""
    sys.dont_write_bytecode = False
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional extra that is not installed: nothing to compile
            pass
    if "vaekit.cli.main" in sys.modules:
        sys.modules["vaekit.cli.main"].preload()
    return len(sys.modules)


def main() -> int:
    if len(sys.argv) > 1:  # a worker: the group given by its index
        print(f"group {sys.argv[1]}: {import_all(GROUPS[int(sys.argv[1])])} modules imported and cached")
        return 0
    env = {**os.environ, "MPLBACKEND": "Agg"}
    workers = [subprocess.Popen([sys.executable, __file__, str(i)], env=env, stderr=subprocess.DEVNULL)
               for i in range(len(GROUPS))]
    return max(w.wait() for w in workers)


if __name__ == "__main__":
    sys.exit(main())
