"""Episode-level quality assurance: metrics, flags, quality score, supervisor decisions, reports.

What robot-data teams check (seed 001 "Quality metrics and validation pipelines", seed 002's
"Checklist before training"), computed inside the pipeline per partition instead of on a finished
dataset after the fact.
"""
