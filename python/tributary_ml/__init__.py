"""Tributary's learning loop: Feast repo, offline log, training, scoring service, drift, latency."""
__version__ = "0.1.0"
