"""``vaekit serve``: a REST service for every kind of vaekit folder (FastAPI + uvicorn, the ``serve`` extra).

artifacts.py (which folder is which, the endpoints each gets) · vae_ops.py, table_ops.py, codec_ops.py (the
endpoints, thin layers over the jobs' APIs) · ops.py (what an endpoint is; fixed row blocks; tables ↔ JSON) ·
batching.py (micro-batcher) · security.py (API key, access log) · app.py (routes, uvicorn). The Host allow-list and
body limit are :mod:`vaekit.web`, shared with ``vaekit explore``.
"""
