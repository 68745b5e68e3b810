"""Wiring and launching: the `hilserl` CLI, Ray jobs, the local and cluster runs, metrics.

This is the only package that calls ``ray.init`` or sets Ray resources and placement.
"""
