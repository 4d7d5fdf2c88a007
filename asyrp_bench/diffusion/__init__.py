"""Frozen diffusion U-Nets (backends) and the DDIM schedule.

Owns the Backend contract; imports only the base modules (docs/architecture.md, checked by tests/test_layers.py).
"""
