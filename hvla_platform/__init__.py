"""hvla-platform: a Dagster-orchestrated data platform for humanoid-robot VLA training data."""

__version__ = "0.1.0"
