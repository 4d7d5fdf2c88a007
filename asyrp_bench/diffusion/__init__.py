"""Frozen diffusion U-Nets (backends) and the DDIM schedule."""
