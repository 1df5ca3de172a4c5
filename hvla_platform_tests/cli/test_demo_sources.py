"""`hvla demo-sources` (docs/sources_demo.md) builds on the main demo's release and checkpoint: on a
home without them it is refused in one line (exit 2) before anything is recorded or run. The full
run is the demo itself (./scripts/demo_sources.sh after ./scripts/demo.sh)."""

from hvla_platform.cli.main import main


def test_without_the_main_demo_it_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("HVLA_HOME", str(home))
    for var in ("HVLA_LAKE_ROOT", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert main(["demo-sources"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"hvla demo-sources: release g1-reach-v1 is not in the lake file://{home.resolve()}/lake: run ./scripts/demo.sh "
        "first (this demo builds on the main demo's release and checkpoint)"]
    # nothing recorded, no Dagster instance created, no run
    assert not (home / "demo-sources").exists() and not (home / "dagster").exists()
