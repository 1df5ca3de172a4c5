"""Seed 000's ``before_retraining_from_runtime`` checklist on landed rollouts, and the permission
gate: a rollout without the customer's permission is kept as incident evidence and never enters a
training release (even approved by a supervisor), with the reason shown.

Rollouts are real recordings of the simulated G1 in the real control loop
(:func:`hvla_platform_tests.lib.serving.test_rollout_recording.record_rollouts`), landed, ingested
and converted like any robot recording.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from hvla_platform.lib.core.keys import rollout_check_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.releases import select_episodes
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.ingest.rollouts import (
    CHECKLIST,
    INCIDENT_EVIDENCE_ONLY,
    check_episode_private_frames,
    check_rollout_recording,
    rollout_exclusions,
    run_rollout_checklist,
)
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.processing.qa.decisions import record_decision
from hvla_platform_tests.lib.formats.recording.test_runtime_policy import NO_PERMISSION, POLICY
from hvla_platform_tests.lib.serving.test_rollout_recording import SERVER_META, record_rollouts



@pytest.fixture(scope="module")
def rollouts(tmp_path_factory) -> dict[str, Path]:
    """Recordings: ``permitted`` and ``no_permission`` (1.1 s) and ``fault`` (the policy fails on its
    second query)."""
    root = tmp_path_factory.mktemp("rollouts")
    # 1.1 s: the expert's arm has started moving (a command path that never moves has no LDLJ, which
    # the HDF5 manifest then holds as NaN, and lineage cannot read it)
    (permitted,), _, _ = record_rollouts(root / "permitted", POLICY, max_steps=22)
    (denied,), _, _ = record_rollouts(root / "denied", NO_PERMISSION, max_steps=22)
    (fault,), _, _ = record_rollouts(root / "fault", POLICY, max_steps=10, fail_after=1)
    return {"permitted": permitted, "no_permission": denied, "fault": fault}


def meta_of(folder: Path) -> dict:
    return yaml.safe_load((folder / "metadata.yaml").read_text())


def tampered(folder: Path, dest: Path, change) -> tuple[Path, dict]:
    """A copy of a recording whose ``metadata.yaml`` was edited by ``change(doc)``."""
    out = Path(shutil.copytree(folder, dest / folder.name))
    doc = meta_of(out)
    change(doc)
    (out / "metadata.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out, doc


def test_a_permitted_rollout_passes_every_item(rollouts):
    checks = check_rollout_recording(rollouts["permitted"], meta_of(rollouts["permitted"]))
    assert list(checks) == list(CHECKLIST) and all(c["passed"] for c in checks.values()), checks
    assert "MSA-2026-17 section 4.2" in checks["customer_permission_checked"]["detail"]
    assert "6 redacted on the robot, 6 stored, all black" in checks["private_frames_filtered"]["detail"]
    assert checks["incident_data_labeled"]["detail"].startswith("outcome timeout: no incident")
    assert "privacy@acme.example" in checks["deletion_request_process_defined"]["detail"]


def test_a_fault_is_labelled_and_an_unlabelled_one_fails(rollouts, tmp_path):
    checks = check_rollout_recording(rollouts["fault"], meta_of(rollouts["fault"]))
    assert checks["incident_data_labeled"]["passed"], checks
    assert "incident labelled fault" in checks["incident_data_labeled"]["detail"]

    def unlabel(doc):
        doc["rollout"]["incident"] = None
    folder, doc = tampered(rollouts["fault"], tmp_path, unlabel)
    check = check_rollout_recording(folder, doc)["incident_data_labeled"]
    assert not check["passed"] and "carries no incident label" in check["detail"]


def test_frames_a_robot_did_not_redact_are_found(rollouts, tmp_path):
    """A recorder that claims the policy's redaction but stored the frames: the check decodes them."""
    def claim(doc):
        doc["rollout"]["runtime_policy"]["redaction"] = {"rule": "blackout", "cameras": ["wrist_right"],
                                                         "windows_s": [[0.0, 0.2]], "reason": None}
        doc["rollout"]["redaction"] = {"rule": "blackout", "cameras": ["wrist_right"], "windows_s": [[0.0, 0.2]],
                                       "frames_redacted": 4}
    folder, doc = tampered(rollouts["permitted"], tmp_path, claim)
    check = check_rollout_recording(folder, doc)["private_frames_filtered"]
    assert not check["passed"]
    assert check["detail"].startswith("4 private frame(s) not redacted in [0, 0.2) s: wrist_right at 0.000 s (max level")

    def unapplied(doc):
        doc["rollout"]["redaction"] = None
    folder, doc = tampered(rollouts["permitted"], tmp_path / "b", unapplied)
    check = check_rollout_recording(folder, doc)["private_frames_filtered"]
    assert not check["passed"] and "did not apply the policy's redaction" in check["detail"]


def test_rights_not_taken_from_the_policy_and_a_missing_deletion_process_fail(rollouts, tmp_path):
    def widen(doc):
        doc["rights"]["allowed_uses"] = ["internal_training", "public_api"]
        doc["rollout"]["runtime_policy"]["deletion"] = None
    folder, doc = tampered(rollouts["permitted"], tmp_path, widen)
    checks = check_rollout_recording(folder, doc)
    assert not checks["customer_permission_checked"]["passed"]
    assert "allowed_uses ['internal_training', 'public_api'] (policy: ['internal_training'])" in \
        checks["customer_permission_checked"]["detail"]
    assert not checks["deletion_request_process_defined"]["passed"]
    assert "defines no deletion process" in checks["deletion_request_process_defined"]["detail"]


def test_a_recording_that_is_not_a_rollout_fails_every_item(rollouts, tmp_path):
    def plain(doc):
        doc["source"] = "teleop"
    folder, doc = tampered(rollouts["permitted"], tmp_path, plain)
    checks = check_rollout_recording(folder, doc)
    assert all(not c["passed"] and "not a rollout (source 'teleop'" in c["detail"] for c in checks.values())


def test_without_permission_a_rollout_never_enters_a_release(rollouts, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    for name in ("permitted", "no_permission"):
        for rec in find_recordings(rollouts[name].parents[2]):
            assert land_recording(lake, rec).status == "landed"
    day, robot = rollouts["permitted"].parent.parent.name, rollouts["permitted"].parent.name
    assert (day, robot) == (rollouts["no_permission"].parent.parent.name, rollouts["no_permission"].parent.name)
    ok, denied = rollouts["permitted"].name, rollouts["no_permission"].name
    raw = ingest_partition(lake, day, robot)
    assert {e.episode_id: e.status for e in raw.episodes} == {ok: "published", denied: "published"}  # evidence kept
    # the checklist: published per rollout, its inputs the raw episode and the checkpoint that acted
    permitted = run_rollout_checklist(lake, day, robot, ok)
    refused = run_rollout_checklist(lake, day, robot, denied)
    assert permitted.retrain_permitted and permitted.status == "materialized"
    assert run_rollout_checklist(lake, day, robot, ok).status == "cached"
    assert not refused.retrain_permitted and refused.prefix == rollout_check_prefix(day, robot, denied)
    assert [c for c, v in refused.checks.items() if not v["passed"]] == ["customer_permission_checked"]
    manifest = lake.read_manifest(refused.prefix)
    assert [(i["key"], i["kind"], i["episode_ids"]) for i in manifest["inputs"]] == [
        (f"raw-mcap/{day}/{robot}/{denied}", "raw_mcap", [denied]),
        (SERVER_META["checkpoint_key"], "checkpoint", [denied])]

    conv = convert_partition(lake, day, robot)
    assert {e.episode_id: e.status for e in conv.episodes} == {ok: "converted", denied: "converted"}
    # short 20 Hz rollouts against the profile's 100 Hz joint states, blacked-out frames: QA findings a
    # supervisor reviews; the approval does not lift the missing permission
    for ep in (ok, denied):
        record_decision(lake, ep, "approve", "rollout reviewed: control-rate streams, redacted frames", by="sup-1")
    spec = ReleaseSpec.from_yaml(f"name: rollouts-v1\nrepo_id: hvla/rollouts\nfps: 20\n"
                                 f"partitions: [{{capture_day: '{day}', robot_id: {robot}}}]\n")
    sel = select_episodes(lake, spec)
    assert [e.episode_id for e in sel.episodes] == [ok]
    assert sel.excluded[denied].startswith(f"{INCIDENT_EVIDENCE_ONLY}: rollout kept as incident evidence only "
                                           "(customer_permission_checked: customer acme does not permit retraining")
    assert rollout_exclusions(lake, day, robot, [ok, denied]) == {denied: sel.excluded[denied]}

    # the processed episode holds no private frame either
    with lake.local_artifact(f"episodes-hdf5/{day}/{robot}") as root:
        check = check_episode_private_frames(Path(root) / f"{ok}.h5", meta_of(rollouts["permitted"]))
    assert check["passed"] and check["detail"].startswith("processed episode: 6 private frame(s)")

    # lineage: the rollout's checklist names the checkpoint that produced it (not in this lake: missing)
    tree = lin.upstream(lake, permitted.prefix)
    assert {(c.type, c.key) for c in tree.children} == {
        ("raw_mcap_episode", f"raw-mcap/{day}/{robot}/{ok}"), ("missing", SERVER_META["checkpoint_key"])}
    hits = lin.downstream(lake, f"checkpoint:{SERVER_META['checkpoint_key']}")
    assert {(h.type, tuple(h.episode_ids)) for h in hits} >= {
        ("raw_mcap_episode", (ok,)), ("raw_mcap_episode", (denied,)), ("rollout_checklist", (ok,)),
        ("rollout_checklist", (denied,)), ("episodes_hdf5", tuple(sorted((ok, denied))))}


def test_a_rollout_whose_checklist_never_ran_is_excluded(rollouts, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    for rec in find_recordings(rollouts["permitted"].parents[2]):
        land_recording(lake, rec)
    day, robot, ep = (rollouts["permitted"].parent.parent.name, rollouts["permitted"].parent.name,
                      rollouts["permitted"].name)
    ingest_partition(lake, day, robot)
    assert rollout_exclusions(lake, day, robot, [ep]) == {
        ep: f"{INCIDENT_EVIDENCE_ONLY}: rollout whose before_retraining_from_runtime checklist has not run "
            f"({rollout_check_prefix(day, robot, ep)} missing)"}
    # a recording that is not a rollout: no checklist, and nothing for releases to exclude
    folder, _ = tampered(rollouts["permitted"], tmp_path / "plain",
                         lambda d: d.update(source="teleop", episode_id="ep-plain-001"))
    folder = folder.rename(folder.parent / "ep-plain-001")
    (folder / f"{ep}_0.mcap").rename(folder / "ep-plain-001_0.mcap")
    land_recording(lake, folder)
    ingest_partition(lake, day, robot)
    assert list(rollout_exclusions(lake, day, robot, [ep, "ep-plain-001"])) == [ep]
    with pytest.raises(ValueError, match="is not a rollout"):
        run_rollout_checklist(lake, day, robot, "ep-plain-001")
