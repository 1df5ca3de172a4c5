"""Workflows that span stages: consent revocation and run-failure alerts."""
