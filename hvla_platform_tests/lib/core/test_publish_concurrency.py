"""Publishing under concurrency and crashes (issue 12 §1, §2), with real subprocesses:

* concurrent publishes of one artifact on the local lake never fail and leave no staging or trash
  directory behind; the published artifact is always one whole version;
* a builder killed with SIGKILL leaves its staging directory under the home/lake, and the next
  build sweeps it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform_tests import procs

WRITERS, PUBLISHES = 4, 60

PUBLISHER = """
import json, pathlib, sys, tempfile
from hvla_platform.lib.core.lake import LocalLake
lake, who, n = LocalLake(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    for i in range(n):
        d = pathlib.Path(tmp) / f"v{i}"
        (d / "sub").mkdir(parents=True)
        version = f"{who}-{i}"
        for j in range(5):
            (d / "sub" / f"f{j}.txt").write_text(version)
        (d / "version.txt").write_text(version)
        lake.publish_artifact("things/one", d, {"version": version})
print("ok")
"""


def test_concurrent_publishes_of_one_artifact_never_fail(tmp_path):
    root = tmp_path / "lake"
    LocalLake(root)
    logs = [tmp_path / f"w{i}.log" for i in range(WRITERS)]
    with procs.running([]) as ps:
        for i in range(WRITERS):
            ps.append(procs.python(PUBLISHER, str(root), f"w{i}", str(PUBLISHES), log=logs[i]))
        codes = procs.wait_all(ps, 300)
    failed = [log.read_text()[-1500:] for c, log in zip(codes, logs) if c != 0]
    assert not failed, f"{len(failed)} of {WRITERS} publishers failed; first:\n{failed[0] if failed else ''}"
    final = root / "things" / "one"
    version = json.loads((final / MANIFEST_NAME).read_text())["version"]
    assert {p.read_text() for p in final.rglob("*.txt")} == {version}  # one whole version
    assert len(list(final.rglob("*.txt"))) == 6
    leftovers = [p.name for p in (root / ".hvla-tmp").iterdir() if p.name != "locks"]
    assert leftovers == []


BUILDER = """
import pathlib, sys, time
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import Content, InputRef, publish_if_changed
from hvla_platform.lib.core.rights import Rights
import datetime as dt
lake, report = LocalLake(sys.argv[1]), pathlib.Path(sys.argv[2])
rights = Rights(data_owners=frozenset({"lab"}), sites=frozenset({"s"}), customers=frozenset({"internal"}),
                consent_refs=frozenset({"c"}), licenses=frozenset({"proprietary"}),
                allowed_uses=frozenset({"internal_training"}), retention_until=dt.date(2031, 1, 1))
def write(staging):
    (staging / "norm_stats.json").write_text("{}")
    report.write_text(str(staging))
    time.sleep(600)  # killed here
publish_if_changed(lake, "norm-stats/x-v1", artifact_type="norm_stats",
                   inputs=[InputRef(key="lerobot/x/x-v1", sha256="a" * 64, kind="lerobot_dataset", episode_ids=["e"])],
                   config={}, rights=rights, write=write)
"""


def test_a_killed_builders_staging_directory_is_swept_by_the_next_build(tmp_path):
    root, report = tmp_path / "lake", tmp_path / "staging-path.txt"
    env = {**os.environ, "HVLA_HOME": str(tmp_path / "home")}
    with procs.running([procs.python(BUILDER, str(root), str(report), env=env, log=tmp_path / "b.log")]) as ps:
        procs.wait_for_file(report, 120, ps)
        staging = Path(report.read_text())
        os.kill(ps[0].pid, signal.SIGKILL)
        ps[0].wait(timeout=30)
    assert staging.is_dir()
    # staging lives under the lake's (or the home's) temporary area, not in the system /tmp
    assert root.resolve() in staging.resolve().parents or (tmp_path / "home").resolve() in staging.resolve().parents
    # the next build of anything sweeps it
    lake = LocalLake(root)
    d = tmp_path / "v"
    d.mkdir()
    (d / "a.txt").write_text("a")
    lake.publish_artifact("things/other", d, {"version": "1"})
    assert not staging.exists()
    assert [p.name for p in (root / ".hvla-tmp").iterdir() if p.name != "locks"] == []
