"""Anomaly detection: VAEAnomalyDetector (scikit-learn / PyOD API), its folder format and its CLI."""
