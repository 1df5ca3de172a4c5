"""``hvla sim record``: without --profile the default G1 as before; --profile NAME records that robot
(robot ids from its model), --frames synthetic and --duration; an unknown profile is refused in one line."""

from __future__ import annotations

import yaml

from hvla_platform.cli.main import main
from hvla_platform.lib.formats.recording.metadata import parse_recording_metadata


def test_record_a_profile_with_synthetic_frames(tmp_path, capsys):
    rc = main(["sim", "record", "--out", str(tmp_path), "--episodes", "1", "--profile", "unitree_h1_3cam",
               "--frames", "synthetic", "--duration", "0.3", "--capture-days", "2026-11-10"])
    assert rc == 0, capsys.readouterr().err
    folder = tmp_path / "2026-11-10" / "h1-001" / "ep-20261110-h1-001-001"
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    assert parse_recording_metadata(meta).profile_name == "unitree_h1_3cam" and meta["duration_s"] == 0.3
    assert "recorded 1 unitree_h1_3cam episode(s)" in capsys.readouterr().out


def test_default_records_the_g1_without_naming_a_profile(tmp_path, capsys):
    rc = main(["sim", "record", "--out", str(tmp_path), "--episodes", "1", "--duration", "0.2",
               "--capture-days", "2026-11-10"])
    assert rc == 0, capsys.readouterr().err
    meta = yaml.safe_load((tmp_path / "2026-11-10" / "g1-001" / "ep-20261110-g1-001-001" / "metadata.yaml").read_text())
    assert meta["robot"] == {"id": "g1-001", "model": "unitree_g1"}


def test_unknown_profile_is_refused(tmp_path, capsys):
    rc = main(["sim", "record", "--out", str(tmp_path), "--profile", "unitree_h1_3cm", "--duration", "0.2"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown robot profile 'unitree_h1_3cm'" in err and "did you mean 'unitree_h1_3cam'" in err
    assert len(err.strip().splitlines()) == 1
