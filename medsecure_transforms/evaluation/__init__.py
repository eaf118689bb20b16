"""Workflows on top of the methods: robustness evaluation (``robustness``) and the MLflow helper (``tracking``)."""
