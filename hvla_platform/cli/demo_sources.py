"""``hvla demo-sources``: the second demo (issue 17 "Done when"), after ``hvla demo`` on the same
embedded default (``HVLA_HOME``: the local lake and the SQLite Dagster instance).

It lands one of each non-robot-log source and meets them in one mixture, every step through the
Dagster assets on the persistent instance (``cli/orchestration.py``, as ``hvla demo``), so the
runs, materializations and check results are in the UI afterwards (docs/sources_demo.md):

1. **teleop**: 2 seed-003 episodes of the simulated UR5e pick (``lib/sim/teleop_pick.py``) landed
   under ``landing/_teleop/``; ``raw_teleop``, then ``teleop_target_lerobot`` and
   ``teleop_target_rlds`` for the ``planner`` target (docs/teleop.md, docs/teleop_targets.md).
2. **human video**: 1 locomotion + 1 manipulation clip of the simulated head camera
   (``lib/sim/human_video.py``) landed with ``land_clip``; ``raw_human_video`` per capture day ×
   device, then ``human_video_release`` for the ``locomotion`` bucket (docs/human_video.md).
3. **rollout**: ``hvla serve`` of the main demo's checkpoint (a subprocess on a free loopback
   port, always stopped) and ``hvla deploy --record-rollout`` of 1 trial under the demo's
   runtime-data policy (``deploy/runtime_policies/demo.yaml``, retraining permitted); the rollout
   is landed and ingested like any recording (``ingest_job``: its ``before_retraining_from_runtime``
   checklist runs as checks of ``raw_mcap``) and the checklist's results are printed (docs/rollouts.md).
4. **mixture**: ``releases/mixtures/demo-cotrain.yaml`` (G1 release + teleop planner target +
   human-video locomotion bucket) registered and built by ``mixture_job`` (docs/mixtures.md).
5. **lineage**: the mixture's upstream tree, which must reach a raw episode of each of its three
   sources, and ``checkpoint:<key>`` downstream, which must reach the rollout.

Exit codes: 0 every step succeeded, 1 a step failed, 2 refused (the main demo's release
``g1-reach-v1`` or its checkpoint is not in the lake: run ``./scripts/demo.sh`` first).

Every step runs Dagster jobs of the code location (``defs/jobs.py``: ``teleop_ingest_job``,
``teleop_target_job``, ``human_video_release_job``; ``human_video_ingest_job``, ``mixture_job``,
``ingest_job``) on the same instance and with the same run helper as ``hvla demo``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hvla_platform.cli.common import EXIT_FAILED, EXIT_OK, echo, open_env_lake, refuse
from hvla_platform.cli.ingest import land_folder
from hvla_platform.lib.core import settings
from hvla_platform.lib.core.keys import (CHECKPOINTS, HUMAN_VIDEO_RAW, LEROBOT, MIXTURES, QUARANTINE, RAW,
                                         RAW_TELEOP, RLDS, ROLLOUT_CHECKS, mixture_prefix, rollout_check_prefix)
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import CheckpointManifest, RolloutChecklistManifest, load_manifest
from hvla_platform.lib.core.settings import REPO_ROOT
from hvla_platform.lib.dataset.codec_log import codec_log_path, codec_output_to
from hvla_platform.lib.dataset.mixture import latest_mixture, published_releases, register_mixture, resolve_mixture
from hvla_platform.lib.dataset.mixture_spec import MixtureSpec
from hvla_platform.lib.dataset.versions import parse_version_id
from hvla_platform.lib.formats.recording.runtime_policy import load_runtime_policy
from hvla_platform.lib.ingest.human_video import land_clip
from hvla_platform.lib.ingest.landing import find_recordings
from hvla_platform.lib.ingest.teleop import find_teleop_episodes, land_teleop_episode
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.lineage.standing import annotate_tree

DEFAULT_MIXTURE_SPEC = REPO_ROOT / "releases" / "mixtures" / "demo-cotrain.yaml"
DEFAULT_RUNTIME_POLICY = REPO_ROOT / "deploy" / "runtime_policies" / "demo.yaml"
#: The main demo's release (``releases/g1-reach-v1.yaml``), whose checkpoint is served in step 3.
MAIN_RELEASE = "g1-reach-v1"
#: The teleop target built (seed 003's planner: teleop phase + 3 stop frames) and the video bucket.
TELEOP_TARGET, VIDEO_BUCKET = "planner", "locomotion"
#: Robot id of the demo's recorded rollouts (its raw partition is ``<UTC day>|<robot id>``).
ROLLOUT_ROBOT = "g1-demo-rollout"
#: Scene seed of the first demo rollout (``hvla deploy``'s default); each later run takes the next one.
ROLLOUT_SEED = 2000
#: Raw leaf types of each source kind in the lineage tree (lib/lineage: manifests' artifact types).
SOURCE_LEAVES = {"G1 robot recordings": "raw_mcap_episode", "seed-003 teleop": "raw_teleop_episode",
                 "human video": "raw_human_video_clip"}
#: Asset jobs this command adds to the code location's Definitions: (name, assets, stage tag).
SERVER_START_TIMEOUT_S = 180.0


class MainDemoMissing(ValueError):
    """The main demo's release or checkpoint is not in the lake (the command is refused, exit 2)."""


def main_demo_checkpoint(lake: Lake, release: str = MAIN_RELEASE) -> str:
    """Lake key of the newest checkpoint trained on a version of ``release`` (the main demo's
    ``checkpoints/<config>/<exp>/<step>``).

    Raises:
        MainDemoMissing: no published version of ``release`` or no checkpoint trained on one.
    """
    if release not in published_releases(lake):
        raise MainDemoMissing(f"release {release} is not in the lake {lake.root_uri()}: run ./scripts/demo.sh first "
                              "(this demo builds on the main demo's release and checkpoint)")
    found = []
    for key in lake.list_artifacts(CHECKPOINTS):
        m = load_manifest(lake, key, CheckpointManifest)
        if m is not None and parse_version_id(m.release)[0] == release:
            found.append((m.created_at, key))
    if not found:
        raise MainDemoMissing(f"no checkpoint trained on release {release} in the lake {lake.root_uri()}: run "
                              "./scripts/demo.sh first (this demo serves the main demo's checkpoint)")
    return max(found)[1]


@dataclass
class Steps:
    """The runs of the demo and the failed steps' one-line reasons, in order."""

    say: Callable[[str], None]
    defs: Any = None
    inst: Any = None
    failures: list[str] = field(default_factory=list)

    def run(self, job: str, partition: str, *, qa_gates_expected: bool = False,
            **kwargs: Any) -> dict[str, dict[str, Any]]:
        """Run ``job`` for ``partition`` (``run_and_report``: the summary, or the root cause in one
        line); its materializations' metadata by asset. A failed run, or a failed check of severity
        ERROR, is recorded as a failure — except, with ``qa_gates_expected``, the episode-QA gates
        of ``episodes_hdf5`` (a rollout records every stream at the control rate, so
        ``dropped_messages`` flags it until a supervisor approves it; docs/rollouts.md "Not done"),
        which are named instead."""
        # deferred: cli.outcome imports dagster
        from hvla_platform.cli.outcome import run_and_report  # noqa: PLC0415

        t0 = time.perf_counter()
        outcome, code = run_and_report("demo-sources", self.defs, self.inst, job, partition, say=self.say, **kwargs)
        self.say(f"    ({time.perf_counter() - t0:.1f} s)")
        failed = [f"{a}.{c}" for a, c, passed, sev in outcome.checks if not passed and sev == "ERROR"]
        if qa_gates_expected:
            gates = [f for f in failed
                     if f.startswith("episodes_hdf5.") and not f.endswith(".rollout_private_frames_filtered")]
            failed = [f for f in failed if f not in gates]
            if gates:
                self.say(f"    note: episode QA gate(s) {', '.join(gates)} flag the rollout (dropped_messages: streams "
                         "recorded at the 20 Hz control rate; camera_black: the frames the policy blacks out): a "
                         "supervisor approval (`hvla qa approve`) is needed before a release takes it (docs/rollouts.md)")
        if code != EXIT_OK:
            self.failures.append(f"{job} ({partition}): run {outcome.run_id[:8]} failed")
        elif failed:
            self.failures.append(f"{job} ({partition}): check(s) {', '.join(failed)} failed")
        return outcome.materializations if code == EXIT_OK else {}

    def fail(self, what: str) -> None:
        """Record a failed step (printed now and in the summary)."""
        self.say(f"    FAILED: {what}")
        self.failures.append(what)


def _scratch(kind: str) -> Path:
    """``$HVLA_HOME/demo-sources/<kind>``: where the simulated recordings are written before landing."""
    return settings.hvla_home() / "demo-sources" / kind


def step_teleop(st: Steps, lake: Lake, seed: int) -> bool:
    """Step 1: record (once; kept under ``$HVLA_HOME/demo-sources/teleop``) and land 2 teleop
    episodes, ingest their partitions, build the planner target as LeRobot and RLDS."""
    # deferred: dagster, for the partition helper
    from hvla_platform.defs.ingest.teleop import register_teleop_partitions  # noqa: PLC0415

    out = _scratch("teleop") / f"seed-{seed}"
    folders = find_teleop_episodes(out) if out.is_dir() else []
    if len(folders) < 2:
        # deferred: the simulator imports mujoco and loads the UR5e model
        from hvla_platform.lib.sim.teleop_pick import record_teleop_episodes  # noqa: PLC0415

        t0 = time.perf_counter()
        folders = record_teleop_episodes(out, episodes=2, seed=seed)
        st.say(f"  recorded {len(folders)} simulated UR5e + 2F-85 pick(s) (teleop → skill → correction → skill_resume) "
               f"in {time.perf_counter() - t0:.1f} s into {out}")
    else:
        st.say(f"  reusing the {len(folders)} teleop episode(s) recorded by an earlier run under {out}")
    parts = set()
    for f in folders:
        r = land_teleop_episode(lake, f)
        st.say(f"    {r.status:<14} {r.capture_day}/{r.robot_id}/{r.episode_id}" + (f": {r.reason}" if r.reason else ""))
        if r.status in ("landed", "already_landed"):
            parts.add((r.capture_day, r.robot_id))
        else:
            st.fail(f"teleop episode {f.name} not landed ({r.status})")
    if not parts:
        return False
    register_teleop_partitions(st.inst, parts)
    for day, robot in sorted(parts):
        if not st.run("teleop_ingest_job", f"{day}|{robot}"):
            return False
    st.say(f"  teleop target {TELEOP_TARGET}: teleop_target_lerobot + teleop_target_rlds (RLDS built in .venv-rlds)")
    made = st.run("teleop_target_job", TELEOP_TARGET)
    return {"teleop_target_lerobot", "teleop_target_rlds"} <= set(made)


def step_human_video(st: Steps, lake: Lake, seed: int) -> bool:
    """Step 2: make (once) and land 1 locomotion + 1 manipulation clip, ingest their partitions,
    build the locomotion bucket's video-only release."""
    # deferred: dagster, for the partition name
    from hvla_platform.cli.orchestration import add_partitions  # noqa: PLC0415
    from hvla_platform.defs.ingest.human_video import HUMAN_VIDEO_PARTITIONS_NAME  # noqa: PLC0415

    out = _scratch("human-video")
    codec_log = codec_log_path("demo-sources-human-video")
    clips = []
    for role in ("locomotion", "manipulation"):
        folder = out / f"hv-20261110-{role[:4]}-{seed:03d}"
        if not folder.is_dir():
            # deferred: the simulator imports mujoco and loads the G1 model
            from hvla_platform.lib.sim.human_video import record_human_video_clip  # noqa: PLC0415

            t0 = time.perf_counter()
            with codec_output_to(codec_log):  # libx264's statistics, written from C to fd 2
                record_human_video_clip(out, role, seed=seed)  # type: ignore[arg-type]
            st.say(f"  recorded a simulated {role} clip of the head camera in {time.perf_counter() - t0:.1f} s "
                   f"into {folder}")
        else:
            st.say(f"  reusing the {role} clip recorded by an earlier run: {folder}")
        clips.append(folder)
    parts = set()
    for f in clips:
        r = land_clip(lake, f)
        st.say(f"    {r.status:<14} {r.capture_day}/{r.robot_id}/{r.episode_id}" + (f": {r.reason}" if r.reason else ""))
        if r.status in ("landed", "already_landed"):
            parts.add(f"{r.capture_day}|{r.robot_id}")
        else:
            st.fail(f"clip {f.name} not landed ({r.status})")
    if not parts:
        return False
    add_partitions(st.inst, HUMAN_VIDEO_PARTITIONS_NAME, sorted(parts))
    for key in sorted(parts):
        if not st.run("human_video_ingest_job", key):
            return False
    st.say(f"  video-only release of the {VIDEO_BUCKET} bucket (faces blurred where the rights require it); "
           f"codec output → {codec_log}")
    with codec_output_to(codec_log):  # LeRobot's encoder restores FFmpeg's stderr logging (codec_log.py)
        return "human_video_release" in st.run("human_video_release_job", VIDEO_BUCKET)


def free_port() -> int:
    """A free TCP port on the loopback interface (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hvla(*args: str) -> list[str]:
    """The command line of ``hvla <args>`` with this interpreter."""
    return [sys.executable, "-m", "hvla_platform.cli", *args]


def _wait_healthy(proc: subprocess.Popen, port: int, timeout_s: float) -> str:
    """Wait until ``hvla serve``'s ``/healthz`` answers 200; "" then, else why not (the process
    exited, or ``timeout_s`` passed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"hvla serve exited with code {proc.returncode} before it answered"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return ""
        except OSError:
            pass
        time.sleep(0.5)
    return f"hvla serve did not answer /healthz within {timeout_s:.0f} s"


def _stop(proc: subprocess.Popen) -> str:
    """Stop the server (SIGTERM, then SIGKILL after 30 s); its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def record_rollout(st: Steps, checkpoint: str, policy: Path, out: Path, seed: int) -> list[Path]:
    """Serve ``checkpoint`` and drive the simulated G1 for 1 trial (scene ``seed``) with ``hvla
    deploy --record-rollout out --runtime-policy policy``; the recorded rollout folders. The server
    is stopped before this returns, whatever happens."""
    port = free_port()
    log_dir = settings.hvla_home() / "logs" / "serving"
    st.say(f"  hvla serve --checkpoint {checkpoint} --port {port} (subprocess)")
    server = subprocess.Popen(_hvla("serve", "--checkpoint", checkpoint, "--port", str(port), "--log-dir", str(log_dir)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        why = _wait_healthy(server, port, SERVER_START_TIMEOUT_S)
        if why:
            tail = " | ".join(_stop(server).strip().splitlines()[-3:])
            st.fail(f"{why}: {tail}")
            return []
        st.say(f"  hvla deploy --port {port} --episodes 1 --seed {seed} --record-rollout {out} --runtime-policy {policy} "
               f"--robot-id {ROLLOUT_ROBOT}")
        p = subprocess.run(_hvla("deploy", "--port", str(port), "--episodes", "1", "--seed", str(seed),
                                 "--record-rollout", str(out),
                                 "--runtime-policy", str(policy), "--robot-id", ROLLOUT_ROBOT),
                           capture_output=True, text=True, timeout=600, env=dict(os.environ))
        for line in (p.stdout + p.stderr).strip().splitlines():
            st.say(f"    | {line}")
        folders = find_recordings(out) if out.is_dir() else []
        # 0 done; 4 stopped on a fault: a fault is a rollout too (labelled an incident by the checklist)
        if p.returncode not in (0, 4) or not folders:
            st.fail(f"hvla deploy exited {p.returncode} with {len(folders)} rollout(s) recorded")
            return []
        return folders
    finally:
        _stop(server)
        st.say(f"  server on port {port} stopped")


def step_rollout(st: Steps, lake: Lake, checkpoint: str, policy: Path) -> list[str]:
    """Step 3: record one rollout of ``checkpoint``, land and ingest it (``ingest_job``; the
    checklist runs as checks of ``raw_mcap``) and print its checklist; the ``rollout-checks/``
    prefixes (empty when the step failed)."""
    out = _scratch("rollouts") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # each run drives a new scene (the deploy default 2000, then 2001, ...): the same trial again
    # would be an exact duplicate, which episode QA's `duplicate` gate rightly flags
    prior = sum(1 for k in lake.list_artifacts(ROLLOUT_CHECKS) if k.split("/")[2:3] == [ROLLOUT_ROBOT])
    folders = record_rollout(st, checkpoint, policy, out, seed=ROLLOUT_SEED + prior)
    if not folders:
        return []
    parts = land_folder(out)
    for day, robot in parts:
        if not st.run("ingest_job", f"{day}|{robot}", qa_gates_expected=True):
            return []
    prefixes = []
    for f in folders:
        day, robot, ep = f.parent.parent.name, f.parent.name, f.name
        prefix = rollout_check_prefix(day, robot, ep)
        m = load_manifest(lake, prefix, RolloutChecklistManifest)
        if m is None:
            st.fail(f"rollout {ep}: no checklist published at {lake.uri(prefix)}")
            continue
        st.say(f"  before_retraining_from_runtime of {ep} (outcome {m.outcome}; checkpoint {m.checkpoint_key}):")
        for name, c in m.checks.items():
            st.say(f"    {'✓' if c['passed'] else '✗'} {name}: {c.get('detail', '')}")
        st.say(f"    → {'retraining permitted' if m.retrain_permitted else 'incident evidence only'} "
               f"({lake.uri(prefix)})")
        if not m.retrain_permitted:  # the demo's policy permits retraining: every item must pass
            st.fail(f"rollout {ep}: checklist failed under the demo's permitting policy")
        prefixes.append(prefix)
    return prefixes


def step_mixture(st: Steps, lake: Lake, spec_path: Path) -> str:
    """Step 4: register and build the mixture; its ``mixtures/<name>/<id>`` prefix ("" when it failed).
    The spec is resolved against the lake first, so a refusal is one line."""
    # deferred: dagster
    from hvla_platform.cli.orchestration import add_partitions  # noqa: PLC0415
    from hvla_platform.defs.dataset.mixture import MIXTURE_PARTITIONS_NAME  # noqa: PLC0415

    text = spec_path.read_text(encoding="utf-8")
    spec = MixtureSpec.from_yaml(text, source=str(spec_path))
    try:
        resolve_mixture(lake, spec)
    except ValueError as exc:  # MixtureError, RightsError: one line
        st.fail(f"mixture {spec.name} refused: {' '.join(str(exc).split())}")
        return ""
    register_mixture(lake, text, source=str(spec_path))
    add_partitions(st.inst, MIXTURE_PARTITIONS_NAME, [spec.name])
    if "mixture_release" not in st.run("mixture_job", spec.name):
        return ""
    m = latest_mixture(lake, spec.name)
    for s in m.sources:
        st.say(f"    {s['name']:<24} {s['release']:<26} {s['role']:<13} share {100 * s['share']:5.1f} % "
               f"({s['num_episodes']} ep, {s['num_frames']} frames; losses {', '.join(s['losses'])})")
    return mixture_prefix(m.name, m.mixture)


def _leaves(node: Any) -> dict[str, set[str]]:
    """``{leaf artifact type: {episode ids}}`` of an upstream tree (every node without children)."""
    out: dict[str, set[str]] = {}
    stack = [node]
    while stack:
        n = stack.pop()
        if n.children:
            stack.extend(n.children)
        elif not n.repeated:
            out.setdefault(n.type, set()).update(n.episode_ids or [n.key.rsplit("/", 1)[-1]])
    return out


def step_lineage(st: Steps, lake: Lake, mixture: str, checkpoint: str, rollouts: list[str]) -> None:
    """Step 5: the mixture's upstream tree (it must reach a raw episode of every source) and the
    checkpoint's downstream artifacts (they must include each rollout's checklist)."""
    index = lin.load_index(lake)
    if mixture:
        tree = lin.upstream(lake, mixture, index=index)
        summary = annotate_tree(lake, tree)
        st.say(f"  $ hvla lineage upstream {mixture} --max-children 3 --no-config")
        for line in lin.render_tree(tree, max_children=3, show_config=False, summary=summary).splitlines():
            st.say(f"    {line}")
        leaves = _leaves(tree)
        for source, leaf in SOURCE_LEAVES.items():
            ids = sorted(leaves.get(leaf, ()))
            st.say(f"  {'✓' if ids else '✗'} {source:<22} {len(ids)} raw {leaf}(s)"
                   + (f", e.g. {ids[0]}" if ids else ""))
            if not ids:
                st.fail(f"lineage of {mixture} reaches no {leaf} ({source})")
    if rollouts:
        hits = lin.downstream(lake, f"checkpoint:{checkpoint}", index=index, include_raw=False)
        st.say(f"  $ hvla lineage downstream checkpoint:{checkpoint} --no-raw   ({len(hits)} artifact(s))")
        keys = {h.key for h in hits}
        for prefix in rollouts:
            ok = prefix in keys
            st.say(f"  {'✓' if ok else '✗'} rollout checklist {prefix} ← checkpoint {checkpoint}")
            if not ok:
                st.fail(f"lineage downstream of checkpoint:{checkpoint} does not reach {prefix}")


def cmd_demo_sources(args: argparse.Namespace) -> int:
    """Land one of each source, build the teleop planner target, the locomotion bucket and the
    mixture, loop one rollout back, show the lineage (module docstring)."""
    t_start = time.perf_counter()
    lake = open_env_lake()
    try:
        checkpoint = main_demo_checkpoint(lake)
    except MainDemoMissing as exc:
        return refuse("demo-sources", exc)
    # the files a person writes are validated strictly before anything runs: a mistake is a
    # one-line refusal (exit 2, main's handler), not a failed step half way through
    load_runtime_policy(args.runtime_policy)
    MixtureSpec.from_yaml(Path(args.mixture_spec).read_text(encoding="utf-8"), source=str(args.mixture_spec))
    # deferred: cli.orchestration imports dagster (seconds); the refusal above skips it
    from hvla_platform.cli.orchestration import ensure_dagster_home, instance, load_defs  # noqa: PLC0415

    home = ensure_dagster_home()
    echo(f"hvla demo-sources — lake {lake.root_uri()}, Dagster instance {home}; main demo checkpoint {checkpoint}")
    st = Steps(say=echo, defs=load_defs(), inst=instance())
    timings = []

    def stage(name: str, title: str, fn: Callable[[], Any]) -> Any:
        echo(f"\n{title}")
        t0, n_failed = time.perf_counter(), len(st.failures)
        try:
            result = fn()
        except Exception as exc:  # one step's error is reported in one line; the next steps still run
            st.fail(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            result = None
        ok = len(st.failures) == n_failed and bool(result)
        if not ok and len(st.failures) == n_failed:
            st.fail(f"step {name} produced nothing")
        timings.append((name, time.perf_counter() - t0, ok))
        return result

    teleop = stage("teleop", f"[1/5] teleop: 2 simulated seed-003 episodes → raw_teleop → {TELEOP_TARGET} target "
                   "as LeRobot and RLDS", lambda: step_teleop(st, lake, args.seed))
    video = stage("human video", "[2/5] human video: 1 locomotion + 1 manipulation clip → raw_human_video → "
                  f"{VIDEO_BUCKET} release", lambda: step_human_video(st, lake, args.seed))
    rollouts = stage("rollout", "[3/5] rollout: serve the main demo's checkpoint, deploy 1 recorded trial, ingest it "
                     "with its checklist", lambda: step_rollout(st, lake, checkpoint, Path(args.runtime_policy))) or []
    mixture = ""
    if teleop and video:
        mixture = stage("mixture", f"[4/5] mixture: {args.mixture_spec}",
                        lambda: step_mixture(st, lake, Path(args.mixture_spec)))
    else:
        echo("\n[4/5] mixture: skipped (it needs the teleop target and the video release)")
    stage("lineage", "[5/5] lineage: every source of the mixture, and the rollout ← checkpoint link",
          lambda: step_lineage(st, lake, mixture or "", checkpoint, rollouts) or True)

    echo(f"\nartifacts (lake {lake.root_uri()}):")
    for prefix in (RAW_TELEOP, HUMAN_VIDEO_RAW, RAW, ROLLOUT_CHECKS, LEROBOT, RLDS, MIXTURES, QUARANTINE):
        arts = lake.list_artifacts(prefix) if prefix != QUARANTINE else sorted(
            {k.rsplit("/", 1)[0] for k in lake.list_keys(prefix) if k.endswith("reason.json")})
        echo(f"  {prefix:<16} {len(arts):>3} artifact(s)" + (f"  e.g. {lake.uri(arts[-1])}" if arts else ""))
    echo("steps: " + ", ".join(f"{name} {secs:.0f} s{'' if ok else ' FAILED'}" for name, secs, ok in timings))
    echo("Dagster UI:  .venv/bin/hvla ui   (assets raw_teleop, teleop_target_lerobot, teleop_target_rlds, "
         "raw_human_video, human_video_release, raw_mcap's rollout checks, mixture_release)")
    if mixture:
        echo(f"lineage:     .venv/bin/hvla lineage upstream {mixture}")
    echo(f"rollouts:    .venv/bin/hvla lineage downstream checkpoint:{checkpoint}")
    for f in st.failures:
        echo(f"  failed: {f}")
    echo(f"\ndemo-sources {'finished' if not st.failures else 'FAILED'} in {time.perf_counter() - t_start:.0f} s")
    return EXIT_OK if not st.failures else EXIT_FAILED


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``demo-sources`` to the ``hvla`` command."""
    d = sub.add_parser("demo-sources", help="after `hvla demo`: teleop, human video, a rollout and a mixture, "
                                            "end to end on the same embedded default")
    d.add_argument("--mixture-spec", default=str(DEFAULT_MIXTURE_SPEC))
    d.add_argument("--runtime-policy", default=str(DEFAULT_RUNTIME_POLICY),
                   help="the deployment's runtime-data policy for the recorded rollout")
    d.add_argument("--seed", type=int, default=0, help="seed of the simulated teleop episodes and clips")
    d.set_defaults(func=cmd_demo_sources)
