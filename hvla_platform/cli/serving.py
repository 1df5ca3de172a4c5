"""``hvla serve`` (the policy server) and ``hvla deploy`` (the simulated G1 as the robot client).

Exit codes: 0 done; 2 refused (rights, bad checkpoint, unsafe binding); 3 the robot stopped on an
emergency stop (also one already set at start); 4 the robot stopped on a fault (server error, lost
connection, a query past ``--query-timeout``, invalid command, ``--max-clipped-steps`` consecutive
clipped commands). ``hvla deploy`` says why on stderr in one line (``hvla deploy: fault: <cause>``,
``hvla deploy: emergency stop: <reason> …``), never with a traceback.

A prompt that is not one of the checkpoint's training tasks is served, not refused, with one
warning line on stderr the first time it is seen (``hvla serve: warning: prompt '…' is not among
the checkpoint's N training tasks (nearest: '…') …``; ``hvla deploy: warning: …`` on the robot
side), and a ``prompt_warning`` line in the inference log / robot safety log
(:mod:`hvla_platform.lib.serving.prompts`).
"""

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from hvla_platform.cli.common import EXIT_ESTOP, EXIT_FAULT, EXIT_REFUSED, echo, open_env_lake
from hvla_platform.cli.known import checkpoint_suggestion
from hvla_platform.lib.core import settings
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.lake_config import lake_config_from_uri, open_lake
from hvla_platform.lib.core.keys import UnsafeIdError, check_id
from hvla_platform.lib.core.rights import SERVING_USES, RightsError
from hvla_platform.lib.formats.recording.runtime_policy import load_runtime_policy
from hvla_platform.lib.serving.inference_log import InferenceLog
from hvla_platform.lib.serving.prompts import PromptCheckedPolicy, PromptWatch, checked_infer
from hvla_platform.lib.serving.safety import EmergencyStop, SafetyLog, record_estop
from hvla_platform.lib.serving.standing import DEFAULT_INTERVAL_S, Standing, standing_lake

API_KEY_ENV = "HVLA_API_KEY"
QUERY_FLOOR_NOTE = "0.5 s"  # robot.QUERY_DEADLINE_FLOOR_S, spelled out so --help needs no jax import


def read_api_key(key_file: str | None) -> str | None:
    """The API key from ``--api-key-file`` (first line) or ``$HVLA_API_KEY``; None when neither is set.
    Never taken from the command line, where other users could read it in the process list.

    Raises:
        SystemExit: the key file is unreadable or empty.
    """
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise SystemExit(f"cannot read an API key from {key_file}: {exc}") from exc
        if not key:
            raise SystemExit(f"{key_file} holds an empty API key")
        return key
    return os.environ.get(API_KEY_ENV) or None


def _refused(reason: str) -> int:
    """``hvla serve: refused: <reason>`` on stderr (one line); :data:`EXIT_REFUSED`."""
    print(f"hvla serve: refused: {' '.join(reason.split())}", file=sys.stderr, flush=True)
    return EXIT_REFUSED


def _warn(command: str, warning: dict) -> None:
    """``hvla <command>: warning: <message>`` on stderr (one line)."""
    print(f"hvla {command}: warning: {' '.join(warning['message'].split())}", file=sys.stderr, flush=True)


def _tasks_note(watch: PromptWatch, whose: str) -> str:
    """The line saying which prompts are checked against what."""
    if not watch.active:
        return f"note: {whose} lists no training tasks; prompts are not checked"
    n = len(watch.training_tasks)
    return (f"trained on {n} task{'s' if n != 1 else ''}: {'; '.join(watch.training_tasks)} — any other prompt is "
            "served with a warning (once per prompt)")


def _standing(key: str, configured: Lake, args: argparse.Namespace) -> Standing:
    """The checkpoint's :class:`~hvla_platform.lib.serving.standing.Standing`, read once now.

    Raises:
        ServingRefused: no lake knows the checkpoint, or it is flagged. ValueError: bad ``--lake``.
    """
    lake = standing_lake(key, configured, open_lake(lake_config_from_uri(args.lake)) if args.lake else None)
    standing = Standing(lake, key, interval_s=args.standing_interval)
    reason = standing.refresh()
    if reason:
        raise RightsError(reason)
    return standing


def _watch_standing(standing: Standing, ilog: InferenceLog) -> None:
    """Say on the console and in the inference log when the checkpoint is revoked while serving,
    and when its standing could not be re-read."""
    def revoked(reason: str) -> None:
        print(f"hvla serve: revoked: {reason}; refusing new connections and requests", file=sys.stderr, flush=True)
        ilog.write("revoked", checkpoint_key=standing.checkpoint_key, reason=reason)

    def failed(exc: BaseException) -> None:
        _warn("serve", {"message": f"could not re-check the standing of {standing.checkpoint_key} in "
                                   f"{standing.lake.root_uri()} ({type(exc).__name__}: {exc}); keeping the last one"})
        ilog.write("standing_error", checkpoint_key=standing.checkpoint_key, error=f"{type(exc).__name__}: {exc}")

    standing.on_revoked, standing.on_error = revoked, failed


def _plausibility_bounds(step_dir: Path, args: argparse.Namespace):
    """The checkpoint's :class:`~hvla_platform.lib.serving.plausibility.PlausibilityBounds` (None
    with ``--no-plausibility-check``), made before the model is loaded.

    Raises:
        ValueError: a negative margin, norm stats without a range, or a robot model lacking the
            checkpoint's joints (ProfileError).
    """
    if args.no_plausibility_check:
        return None
    # deferred: the module reads checkpoints through lib.training, which imports jax (seconds)
    from hvla_platform.lib.serving.plausibility import DEFAULT_MARGIN, bounds_from_checkpoint  # noqa: PLC0415

    margin = DEFAULT_MARGIN if args.plausibility_margin is None else args.plausibility_margin
    return bounds_from_checkpoint(step_dir, margin=margin, robot_profile=args.robot_profile)


def _plausible(policy, bounds, ilog: InferenceLog):
    """``policy`` behind :class:`~hvla_platform.lib.serving.plausibility.PlausiblePolicy`, its
    bounds said on the console and in a ``plausibility`` inference-log line; with ``bounds`` None
    (``--no-plausibility-check``) ``policy`` itself, with a warning and a ``plausibility`` line
    saying the check is off."""
    if bounds is None:
        off = ("--no-plausibility-check: states and actions are not checked against the checkpoint's bounds; "
               "a state of 100 rad is answered")
        _warn("serve", {"message": off})
        ilog.write("plausibility", enabled=False, reason=off)
        return policy
    # deferred: the module imports lib.training, hence jax (seconds); see _plausibility_bounds
    from hvla_platform.lib.serving.plausibility import PlausiblePolicy  # noqa: PLC0415

    echo(f"plausibility bounds of the state ({bounds.state.dim} dims) and actions ({bounds.actions.dim}): "
         f"{bounds.rule()}; outside them a request gets an error frame")
    ilog.write("plausibility", enabled=True, **bounds.describe())
    return PlausiblePolicy(policy, bounds)


def cmd_serve(args: argparse.Namespace) -> int:
    """`hvla serve --checkpoint DIR|KEY`: authorize, load and serve a checkpoint over openpi's protocol."""
    # deferred: the checkpoint, policy and server modules import jax/flax/orbax (seconds)
    from hvla_platform.lib.serving.checkpoint import authorize, resolve_checkpoint, server_metadata  # noqa: PLC0415
    from hvla_platform.lib.serving.server import PolicyServer, tls_context  # noqa: PLC0415
    from hvla_platform.lib.training.checkpoint import CheckpointError  # noqa: PLC0415
    from hvla_platform.lib.training.policy_loader import load_policy  # noqa: PLC0415

    lake = open_env_lake()
    api_key = read_api_key(args.api_key_file)
    if args.offline and args.lake:
        return _refused("--offline and --lake contradict each other: give one")
    if args.no_plausibility_check and args.plausibility_margin is not None:
        return _refused("--no-plausibility-check and --plausibility-margin contradict each other: give one")
    if not args.standing_interval > 0:
        return _refused(f"--standing-interval must be > 0 s, got {args.standing_interval}")
    if bool(args.tls_cert) != bool(args.tls_key):
        return _refused("--tls-cert and --tls-key go together: give both (PEM certificate and its private key)")
    try:
        tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return _refused(f"cannot load the TLS certificate {args.tls_cert} / key {args.tls_key}: {exc}")
    if not Path(args.checkpoint).expanduser().is_dir() and {".", ".."} & set(str(args.checkpoint).split("/")):
        return _refused(f"checkpoint {args.checkpoint!r} has '.' or '..' segments; give a lake key "
                        "checkpoints/<config>/<exp>/<step> or a checkpoint directory")
    try:
        with resolve_checkpoint(args.checkpoint, lake) as (step_dir, key):
            try:
                t0 = time.perf_counter()
                manifest = authorize(step_dir, args.use, lake=None, checkpoint_key=key)  # verified, then rights
                verify_s = time.perf_counter() - t0
                key = manifest.artifact_key  # the identity, from the committed manifest: copies too
                standing = None if args.offline else _standing(key, lake, args)
            except (RightsError, CheckpointError, ValueError) as exc:
                return _refused(str(exc))
            except Exception as exc:  # noqa: BLE001 - the lake could not be read (S3 down, credentials): one line
                return _refused(f"cannot read the standing of checkpoint {key} in the lake: {type(exc).__name__}: "
                                f"{exc} (--offline serves it without checking, logged)")
            echo(f"verified {len(manifest.files or [])} files of {step_dir} against its committed manifest "
                 f"in {verify_s:.2f} s")
            echo(f"loading {step_dir} (checkpoint {key}) for {args.use!r}")
            try:
                bounds = _plausibility_bounds(step_dir, args)
            except ValueError as exc:
                return _refused(f"no plausibility bounds: {exc} (--robot-profile names the robot model; "
                                "--no-plausibility-check serves without bounds, logged)")
            policy = load_policy(step_dir)
            log_dir = Path(args.log_dir) if args.log_dir else settings.hvla_home() / "logs" / "serving"
            ilog = InferenceLog(log_dir, checkpoint=key, sample_every=args.sample_observations_every)
            if standing is None:
                unchecked = (f"--offline: the standing of checkpoint {key} (consent revocations) is not checked; "
                             "a revoked checkpoint would be served")
                _warn("serve", {"message": unchecked})
                ilog.write("standing_unchecked", checkpoint_key=key, reason=unchecked)
            else:
                _watch_standing(standing, ilog)

            def unknown_prompt(warning: dict) -> None:
                _warn("serve", warning)
                ilog.write("prompt_warning", **warning)

            checked = PromptCheckedPolicy(policy, unknown_prompt)
            echo(_tasks_note(checked.watch, "the checkpoint"))
            checked = _plausible(checked, bounds, ilog)
            try:
                server = PolicyServer(checked, host=args.host, port=args.port, api_key=api_key,
                                      metadata={**server_metadata(policy.metadata, use=args.use, checkpoint_key=key),
                                                # which server produced a rollout's actions (rollout recordings)
                                                "server_instance": ilog.instance},
                                      max_message_bytes=args.max_message_mb * 1024 * 1024,
                                      inference_log=ilog, allow_remote_without_key=args.allow_remote_without_key,
                                      standing=standing, idle_timeout_s=args.idle_timeout or None,
                                      max_connections_per_peer=args.max_connections_per_peer,
                                      allowed_origins=args.allow_origin, ssl_context=tls)
            except ValueError as exc:
                return _refused(str(exc))

            def started(s: PolicyServer) -> None:
                web = "https" if s.ssl_context is not None else "http"
                echo(f"serving {key} for {args.use!r} on {s.scheme}://{s.host}:{s.port} "
                      f"(health: {web}://{s.host}:{s.port}/healthz; API key {'required' if api_key else 'off'}; "
                      f"inference log {ilog.path}"
                      + (f"; sampling every {ilog.sample_every}th observation" if ilog.sample_every else "") + ")")
                if standing is not None:
                    echo(f"standing of {key} re-checked in {standing.lake.root_uri()} every {standing.interval_s:g} s "
                         "and refused once revoked")
                    standing.start()

            try:
                server.serve_forever(on_start=started)
            finally:
                if standing is not None:
                    standing.stop()
                ilog.close()
    except FileNotFoundError as exc:
        return _refused(f"{exc}{checkpoint_suggestion(lake, args.checkpoint)}")
    echo("server stopped")
    return 0


def _deploy_stopped(why: str) -> None:
    """``hvla deploy: <why>`` on stderr (one line): why the robot stopped."""
    print(f"hvla deploy: {' '.join(why.split())}", file=sys.stderr, flush=True)


def cmd_deploy(args: argparse.Namespace) -> int:
    """`hvla deploy --host H --port P`: the simulated G1 as the robot, driven by a policy server.

    The emergency stop is armed first (signals, stop-file watcher), before the seconds of imports
    and the connection, and every wait after it (connecting, each query) is abandoned within
    :func:`~hvla_platform.lib.serving.control_loop.bounded_query`'s poll slice once it is set.

    With ``--record-rollout DIR --runtime-policy FILE`` every trial is recorded as a robot recording
    under DIR whose rights come from the runtime-data policy
    (:class:`~hvla_platform.lib.serving.rollout_recording.RolloutRecorder`, docs/rollouts.md); an
    invalid policy is refused (exit 2, one line) before the robot connects.
    """
    if args.query_timeout is not None and not args.query_timeout > 0:
        _deploy_stopped(f"refused: --query-timeout must be > 0 s, got {args.query_timeout}")
        return EXIT_REFUSED
    if args.max_clipped_steps < 0:
        _deploy_stopped(f"refused: --max-clipped-steps must be >= 0 (0 = never), "
                        f"got {args.max_clipped_steps}")
        return EXIT_REFUSED
    if (args.record_rollout is None) != (args.runtime_policy is None):
        _deploy_stopped("refused: --record-rollout DIR and --runtime-policy FILE go together (a rollout's rights "
                        "come from the deployment's runtime-data policy)")
        return EXIT_REFUSED
    runtime_policy = None
    if args.runtime_policy is not None:
        try:
            runtime_policy = load_runtime_policy(args.runtime_policy)
            check_id(args.robot_id, "--robot-id")
        except (RightsError, UnsafeIdError) as exc:
            _deploy_stopped(f"refused: {exc}")
            return EXIT_REFUSED
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_path = Path(args.safety_log) if args.safety_log else settings.hvla_home() / "logs" / "robot" / f"safety-{stamp}.jsonl"
    slog = SafetyLog(log_path)
    estop = EmergencyStop(args.estop_file)
    estop.install_signal_handlers()
    estop.start_watching()
    url = f"{'wss' if args.tls_ca else 'ws'}://{args.host}:{args.port}"
    echo(f"robot: simulated Unitree G1 (reach task) → policy server {url}; safety log {log_path}"
          + (f"; emergency stop: Ctrl-C or `touch {args.estop_file}`" if args.estop_file else "; emergency stop: Ctrl-C"))

    def stopped_before_running(during: str) -> int:
        record_estop(slog, estop, during, safe_stop="no command sent")
        slog.mode("estop", reason=estop.reason)
        slog.close()
        _deploy_stopped(f"emergency stop {'at start' if during == 'before_start' else 'while connecting'} "
                        f"({estop.reason}); no command sent")
        return EXIT_ESTOP

    if estop.is_set():  # pressed before the robot did anything: do not even connect
        return stopped_before_running("before_start")
    # deferred: the robot side imports jax (the loop's chunk checks) and mujoco (the G1 model): seconds
    from hvla_platform.lib.serving.client import PolicyClient, ServerError  # noqa: PLC0415
    from hvla_platform.lib.serving.control_loop import StoppedWhileWaiting, bounded_query  # noqa: PLC0415
    from hvla_platform.lib.serving.robot import (  # noqa: PLC0415
        QUERY_DEADLINE_FLOOR_S, RobotConfig, query_deadline_s, run_robot)
    # deferred: mujoco (the simulated robot), seconds to import
    from hvla_platform.lib.sim.env import ReachEnv, arm_joint_limits  # noqa: PLC0415
    # deferred: the MCAP writer and the image encoder, only needed once the robot runs
    from hvla_platform.lib.serving.rollout_recording import RolloutRecorder  # noqa: PLC0415

    slog.mode("connecting", server=url)
    api_key = read_api_key(args.api_key_file)
    # the handshake and the metadata frame wait at most --connect-timeout each, the stop at most a poll slice
    try:
        client = bounded_query(lambda _: PolicyClient(args.host, args.port, api_key=api_key, tls_ca=args.tls_ca,
                                                      connect_timeout_s=args.connect_timeout,
                                                      recv_timeout_s=args.connect_timeout), None,
                               timeout_s=None, estop=estop)
    except StoppedWhileWaiting:
        return stopped_before_running("connecting")
    except (ServerError, OSError, TimeoutError) as exc:
        slog.mode("fault", error=f"cannot connect to {url}: {exc}")
        slog.close()
        echo(f"hvla deploy: cannot connect to {url}: {exc}")
        return EXIT_FAULT
    meta = client.metadata
    echo(f"connected: checkpoint {meta.get('checkpoint')} (serving use {meta.get('serving_use')}), "
          f"action chunks of {meta.get('action_horizon')} × {meta.get('action_dim')}, cameras {meta.get('cameras')}")
    try:
        query_timeout = args.query_timeout or query_deadline_s(int(meta["action_horizon"]), args.control_hz)
    except (KeyError, TypeError, ValueError) as exc:
        client.close(timeout_s=0.5)
        slog.mode("fault", error=f"cannot set the query deadline: {exc}")
        slog.close()
        _deploy_stopped(f"fault: cannot set the query deadline from the server's metadata ({exc}); "
                        "give --query-timeout")
        return EXIT_FAULT
    client.recv_timeout_s = query_timeout
    formula = (f" (max({QUERY_DEADLINE_FLOOR_S:g} s, {meta['action_horizon']} actions / "
               f"{args.control_hz:g} Hz))")
    escalation = (f"{args.max_clipped_steps} consecutive clipped commands" if args.max_clipped_steps
                  else "no number of clipped commands")
    echo(f"query deadline {query_timeout:g} s{'' if args.query_timeout else formula}; "
         f"guard stops after {escalation}")
    cfg = RobotConfig(episodes=args.episodes, seed=args.seed, max_steps=args.max_steps,
                      replan_every=args.replan_every, max_step_rad=args.max_step_rad,
                      query_timeout_s=query_timeout, max_clipped_steps=args.max_clipped_steps or None)
    watch = PromptWatch(meta.get("tasks"), prompt_used=bool(meta.get("prompt_used", True)))
    echo(_tasks_note(watch, "the server"))

    def unknown_prompt(warning: dict) -> None:
        _warn("deploy", warning)
        slog.write("prompt_warning", **warning)

    env_factory, robot_log, recorder = (lambda: ReachEnv(control_hz=args.control_hz)), slog, None
    if runtime_policy is not None:
        recorder = RolloutRecorder(args.record_rollout, runtime_policy, robot_id=args.robot_id, server_url=url,
                                   server_metadata=meta)
        env_factory, robot_log = recorder.wrap_env(env_factory), recorder.wrap_safety_log(slog)
    result = None
    try:
        result = run_robot(checked_infer(client.infer, watch, unknown_prompt), meta, env_factory, arm_joint_limits(), cfg,
                           estop=estop, safety_log=robot_log, stop_on_fault=True, log=echo)
    except ValueError as exc:
        slog.mode("fault", error=str(exc))
        _deploy_stopped(f"fault: {exc}")
        return EXIT_FAULT
    finally:
        client.close(timeout_s=0.5)  # a hung server cannot hold the exit (its closing handshake)
        if recorder is not None:
            for folder in recorder.finish(result):
                echo(f"rollout recorded: {folder} (land it with `hvla ingest {args.record_rollout} --materialize`)")
        slog.close()
    echo(f"{result['successes']}/{result['trials_run']} trial(s) succeeded "
          f"(stop reasons: {[t['stop_reason'] for t in result['per_trial']]}); "
          f"round trip mean {result['timing']['infer_ms_mean'] or float('nan'):.1f} ms; safety log {log_path}")
    if args.result_json:
        Path(args.result_json).write_text(json.dumps(result, indent=2, default=str))
    if result["stopped_by"] == "fault":
        _deploy_stopped(f"fault: {result['stop_cause']}")
    elif result["stopped_by"] == "estop":
        latency = result["estop_latency_s"]
        _deploy_stopped(f"emergency stop: {result['stop_cause']}"
                        + ("" if latency is None
                           else f"; safe stop commanded {latency * 1000:.0f} ms after it"))
    return {"estop": EXIT_ESTOP, "fault": EXIT_FAULT}.get(result["stopped_by"], 0)


def add_serving_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` and ``deploy`` to the ``hvla`` command."""
    s = sub.add_parser("serve", help="serve a checkpoint to robots over openpi's websocket protocol")
    s.add_argument("--checkpoint", required=True,
                   help="checkpoint directory (…/checkpoints/<config>/<exp>/<step>) or its lake key")
    s.add_argument("--host", default="127.0.0.1", help="listen address (default loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--use", default="lab_robot", choices=list(SERVING_USES),
                   help="deployment target; refused unless the checkpoint's manifest allows it")
    s.add_argument("--api-key-file", default=None,
                   help=f"file holding the API key clients must send (or set ${API_KEY_ENV})")
    s.add_argument("--allow-remote-without-key", action="store_true",
                   help="permit a non-loopback --host without an API key")
    s.add_argument("--max-message-mb", type=int, default=16, help="largest accepted observation message, MiB")
    s.add_argument("--idle-timeout", type=float, default=300.0, metavar="S",  # server.DEFAULT_IDLE_TIMEOUT_S
                   help="close a connection after S seconds without a request (default 300; 0 = never)")
    s.add_argument("--max-connections-per-peer", type=int, default=16, metavar="N",
                   help="concurrent connections from one IP address (default 16; 64 in all); more get HTTP 429")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="accept WebSocket handshakes from this browser origin (e.g. https://lab.example); "
                        "repeatable. Any other Origin header is refused with HTTP 403")
    s.add_argument("--tls-cert", default=None, metavar="PEM",
                   help="serve wss:// with this certificate (with --tls-key); clients verify it")
    s.add_argument("--tls-key", default=None, metavar="PEM", help="the TLS certificate's private key")
    s.add_argument("--log-dir", default=None, help="inference log directory (default $HVLA_HOME/logs/serving)")
    s.add_argument("--sample-observations-every", type=int, default=0,
                   help="store every N-th observation (camera frames, state) next to the log; 0 = never (default)")
    s.add_argument("--lake", default=None, metavar="PATH_OR_URI",
                   help="the lake whose revocation records decide the checkpoint's standing (a directory or "
                        "s3://bucket/prefix; default: the configured HVLA lake, which must hold the checkpoint)")
    s.add_argument("--offline", action="store_true",
                   help="serve without checking the checkpoint's standing (logged); for hosts that reach no lake")
    s.add_argument("--standing-interval", type=float, default=DEFAULT_INTERVAL_S, metavar="S",
                   help="seconds between re-checks of the checkpoint's standing while serving "
                        f"(default {DEFAULT_INTERVAL_S:g})")
    s.add_argument("--plausibility-margin", type=float, default=None, metavar="K",  # plausibility.DEFAULT_MARGIN
                   help="refuse states and actions outside the checkpoint's norm-stats range widened by K times "
                        "its width on each side, joined with the robot model's joint limits, plus 0.2 "
                        "(default 1; docs/serving.md, Plausibility bounds)")
    s.add_argument("--no-plausibility-check", action="store_true",
                   help="serve without the plausibility bounds (said on the console and logged)")
    s.add_argument("--robot-profile", default=None, metavar="NAME",
                   help="robot profile whose joint limits join the plausibility bounds (default: the "
                        "checkpoint's config.json robot_profile, else unitree_g1_29dof)")
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("deploy", help="run the simulated G1 as a robot driven by a policy server")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--api-key-file", default=None, help=f"file holding the server's API key (or ${API_KEY_ENV})")
    d.add_argument("--tls-ca", default=None,
                   help="connect over wss:// trusting this PEM certificate (the server's --tls-cert, or its CA)")
    d.add_argument("--episodes", type=int, default=1)
    d.add_argument("--seed", type=int, default=2000)
    d.add_argument("--max-steps", type=int, default=140, help="control steps per episode before timeout")
    d.add_argument("--replan-every", type=int, default=5, help="actions executed from each chunk before re-querying")
    d.add_argument("--max-step-rad", type=float, default=0.25, help="largest joint target change per step, rad")
    d.add_argument("--control-hz", type=float, default=20.0)
    d.add_argument("--estop-file", default=None, help="emergency stop as soon as this file exists")
    d.add_argument("--safety-log", default=None, help="robot safety log path (default $HVLA_HOME/logs/robot/)")
    d.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the server")
    d.add_argument("--query-timeout", type=float, default=None,
                   help="seconds to wait for one action chunk, holding the last command, before stopping "
                        f"as a fault (default max({QUERY_FLOOR_NOTE}, action horizon / --control-hz))")
    d.add_argument("--max-clipped-steps", type=int, default=10,
                   help="stop as a fault after this many consecutive commands clipped by the action guard "
                        "(default 10 = 0.5 s at 20 Hz; 0 = never)")
    d.add_argument("--result-json", default=None, help="write the trial results here")
    d.add_argument("--record-rollout", default=None, metavar="DIR",
                   help="record each trial as a robot recording under DIR/<day>/<robot>/<episode>/ "
                        "(ROS 2 MCAP + metadata.yaml; needs --runtime-policy; docs/rollouts.md)")
    d.add_argument("--runtime-policy", default=None, metavar="FILE",
                   help="the deployment's runtime-data policy (YAML): the recorded rollouts' rights, retention, "
                        "redaction of private frames and the customer's permission to retrain")
    d.add_argument("--robot-id", default="g1-deploy-001", help="robot id of recorded rollouts (default g1-deploy-001)")
    d.set_defaults(func=cmd_deploy)
