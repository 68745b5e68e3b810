"""Offline reward path: LeRobot datasets, labeling and repair, the image reward classifier, its training.

Pure torch: nothing here imports Ray except the Ray Train entry point ``reward/job.py``.
"""
