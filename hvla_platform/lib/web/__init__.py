"""The lake web service: a small read-only HTTP view of the lake (reports, artifacts) and the
episode review pages a data supervisor opens from the Dagster UI (issue 13)."""
