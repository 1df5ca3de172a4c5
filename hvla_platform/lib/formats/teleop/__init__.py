"""Seed 003's teleoperation episodes: phase-labelled per-frame pickles and ``episode_meta.json``."""
