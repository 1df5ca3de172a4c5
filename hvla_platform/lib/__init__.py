"""Plain-Python logic of the platform (formats, math, storage, rights, lineage).

Nothing under ``hvla_platform.lib`` imports Dagster: the Dagster objects in
``hvla_platform.defs`` call into these modules.
"""
