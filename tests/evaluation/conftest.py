"""Evaluation tests use tiny models; tests/conftest.py runs every test on one thread."""
