"""``hvla profile list [--json]`` and ``hvla profile check RECORDING [--profile NAME] [--json]``:
which robot profiles exist, and how a recording's bag maps to one (topics, types and rates found vs
expected; docs/robot_profiles.md, docs/recordings.md).

``check`` takes a recording folder or a bag (a rosbag2 directory, an ``.mcap``, ``.db3`` or
``.bag`` file). The profile is ``--profile``, else the recording's ``metadata.yaml``
``robot.profile``, else the default profile. Exit codes (README, "Exit codes"): 0 the bag matches
the profile; :data:`EXIT_MISMATCH` (1) it does not (the table says how, the last line sums it up
and suggests a better-matching profile when one exists); 2 refused: unknown profile (with "did
you mean"), no bag or an unreadable one, an unreadable ``metadata.yaml``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from hvla_platform.cli.common import EXIT_FAILED, EXIT_OK, echo
from hvla_platform.lib.formats.bags.bag import Bag, open_bag
from hvla_platform.lib.formats.bags.layout import METADATA_YAML
from hvla_platform.lib.formats.bags.profile_check import (
    ProfileMatch,
    best_matching_profile,
    check_bag_against_profile,
)
from hvla_platform.lib.formats.recording.metadata import RecordingMetadataError
from hvla_platform.lib.formats.recording.profile import (
    DEFAULT_PROFILE,
    RobotProfile,
    available_profiles,
    load_profile,
)

#: Exit code of ``hvla profile check`` when the bag does not match the profile.
EXIT_MISMATCH = EXIT_FAILED


def _camera_text(prof: RobotProfile) -> str:
    return ", ".join(f"{k} ({c.encoding} {c.height}x{c.width} @{c.rate_hz:g} Hz)" for k, c in prof.cameras.items())


def cmd_list(args: argparse.Namespace) -> int:
    """``hvla profile list [--json]``: every available profile (name, version, robot model,
    cameras, description).

    Raises:
        ProfileError: a profile file is invalid (refused, naming the file).
    """
    profiles = [load_profile(name) for name in sorted(available_profiles())]
    files = available_profiles()
    if args.json:
        print(json.dumps({"profiles": [{
            "name": p.profile, "version": p.version, "robot_model": p.robot.model, "description": p.description,
            "cameras": {k: {"topic": c.topic, "type": c.type, "encoding": c.encoding, "height": c.height,
                            "width": c.width, "rate_hz": c.rate_hz} for k, c in p.cameras.items()},
            "file": str(files[p.profile]), "default": p.profile == DEFAULT_PROFILE,
        } for p in profiles]}, indent=2), flush=True)
        return EXIT_OK
    for p in profiles:
        default = "  (default)" if p.profile == DEFAULT_PROFILE else ""
        echo(f"{p.key:<28} robot {p.robot.model:<20} {p.description}{default}")
        echo(f"{'':<28} cameras: {_camera_text(p)}")
    echo(f"= {len(profiles)} profile(s)")
    return EXIT_OK


def recording_profile_name(bag: Bag) -> tuple[str | None, str]:
    """The profile the recording names (``robot.profile`` of the ``metadata.yaml`` beside its bag)
    and where that came from; ``(None, why)`` when it names none.

    Raises:
        RecordingMetadataError: that ``metadata.yaml`` is not readable YAML or ``robot.profile`` is
            not a string.
    """
    meta = bag.layout.root / METADATA_YAML
    if not meta.is_file():
        return None, "no metadata.yaml beside the bag"
    try:
        doc = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RecordingMetadataError(f"{meta}: cannot read: {' '.join(str(exc).split())}") from exc
    robot = doc.get("robot") if isinstance(doc, dict) else None
    name = robot.get("profile") if isinstance(robot, dict) else None
    if name is None:
        return None, f"{meta} names no robot.profile"
    if not isinstance(name, str):
        raise RecordingMetadataError(f"{meta}: robot.profile must be a profile name, got {name!r}")
    return name, f"robot.profile of {meta}"


def _summary(match: ProfileMatch, suggestions: list[tuple[str, int, int]]) -> str:
    streams = len(match.streams)
    if match.ok:
        return f"= matches robot profile {match.profile}: {streams} of {streams} stream(s) as expected"
    mine = (match.matched_required / match.required_count, match.matched_required)
    better = [s for s in suggestions if s[0] != match.profile and (s[1] / s[2], s[1]) > mine]
    hint = (f"; closest profile: {better[0][0]} ({better[0][1]} of {better[0][2]} required topics), "
            f"try --profile {better[0][0].split('@')[0]}" if better else "")
    return (f"= does not match robot profile {match.profile}: {len(match.problems)} problem(s): "
            f"{'; '.join(match.problems)}{hint}")


def cmd_check(args: argparse.Namespace) -> int:
    """``hvla profile check RECORDING [--profile NAME] [--json]`` (see the module docstring).

    Raises:
        RawLogError: no bag, or an unreadable one (refused).
        ProfileError: unknown or invalid profile (refused, with "did you mean").
        RecordingMetadataError: the recording's ``metadata.yaml`` cannot be read (refused).
    """
    bag = open_bag(Path(args.recording))
    if args.profile:
        name, source = args.profile, "--profile"
    else:
        name, source = recording_profile_name(bag)
        if name is None:
            name, source = DEFAULT_PROFILE, f"the default profile ({source})"
    prof = load_profile(name)
    match = check_bag_against_profile(bag, prof)
    suggestions = [] if match.ok else best_matching_profile(bag)
    summary = _summary(match, suggestions)
    if args.json:
        doc: dict[str, Any] = {**match.to_dict(), "profile_from": source,
                               "suggestions": [{"profile": p, "matched_required": n, "required": m}
                                               for p, n, m in suggestions],
                               "summary": summary}
        print(json.dumps(doc, indent=2), flush=True)
    else:
        echo(match.format_text())
        echo(f"(profile from {source})")
        echo(summary)
    return EXIT_OK if match.ok else EXIT_MISMATCH


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``profile`` (``list``, ``check``) to the ``hvla`` command."""
    p = sub.add_parser("profile", help="robot profiles: list them; check how a recording's bag maps to one")
    verbs = p.add_subparsers(dest="action", required=True)
    ls = verbs.add_parser("list", help="every robot profile: name@version, robot model, cameras, description")
    ls.add_argument("--json", action="store_true", help="print JSON ({\"profiles\": [...]}) instead of the table")
    ls.set_defaults(func=cmd_list)
    ck = verbs.add_parser("check", help="topics, types and rates of a recording's bag vs a robot profile "
                                        "(exit 0 matches, 1 does not, 2 refused)")
    ck.add_argument("recording", help="a recording folder, or a bag: rosbag2 directory, .mcap, .db3 or .bag")
    ck.add_argument("--profile", default=None,
                    help="profile name (default: the recording's metadata.yaml robot.profile, else "
                         f"{DEFAULT_PROFILE})")
    ck.add_argument("--json", action="store_true", help="print the match as JSON instead of the table")
    ck.set_defaults(func=cmd_check)
