"""Dagster objects only, one folder per stage; loaded by ``dg.load_from_defs_folder``."""
