"""Production automation: the landing sensor, the nightly schedule and release refresh, declarative
automation of release derivatives, and run-failure alerts (docs/automation.md)."""
