"""Deployment: export trained VAEs and anomaly detectors as ONNX or TorchScript graphs (``vaekit export``).

Layer: above the jobs (it reads anomaly detector folders), below the CLI.
"""
