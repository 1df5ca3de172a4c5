"""Browser tests of the Dagster UI (docs/ui_testing.md)."""


def pytest_configure(config):
    # Registered here as well as it may be in pyproject.toml, so that `--strict-markers` accepts
    # the marker whichever way the suite is started.
    config.addinivalue_line(
        "markers", "browser: drives the Dagster UI in headless Chromium (needs scripts/install_ui.sh)")
