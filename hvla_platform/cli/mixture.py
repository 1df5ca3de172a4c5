"""``hvla mixture register SPEC.yaml`` / ``hvla mixture build NAME|SPEC.yaml`` / ``hvla mixture show NAME``
(docs/mixtures.md).

``build`` resolves the mixture against the lake first (the library call the asset makes), so an
unknown release, a refused use or an unstated mix of action spaces is one line on stderr and exit 2
before any run; then it runs ``mixture_job`` for the mixture's partition on the persistent Dagster
instance, like ``hvla release build``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hvla_platform.cli.common import EXIT_OK, echo, open_env_lake
from hvla_platform.lib.dataset.mixture import (
    latest_mixture,
    load_mixture_spec,
    register_mixture,
    resolve_mixture,
)
from hvla_platform.lib.dataset.mixture_spec import MixtureSpec

#: The Dagster dynamic partitions of mixtures (``defs/dataset/mixture.py`` ``MIXTURE_PARTITIONS_NAME``).
MIXTURE_PARTITIONS = "mixture"


def _register(path: Path) -> MixtureSpec:
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance  # noqa: PLC0415

    spec = register_mixture(open_env_lake(), path.read_text(encoding="utf-8"), source=str(path))
    add_partitions(instance(), MIXTURE_PARTITIONS, [spec.name])
    return spec


def show(name: str, *, as_json: bool) -> int:
    """`hvla mixture show NAME`: the newest version's sources, shares and rights."""
    m = latest_mixture(open_env_lake(), name)
    if as_json:
        echo(json.dumps(m.to_dict(), indent=2, default=str))
        return EXIT_OK
    echo(f"mixture {m.mixture} (version {m.version} of {m.name}, {m.repo_id}): {m.num_episodes} episode(s), "
         f"{m.num_frames} frame(s); uses {', '.join(m.rights['allowed_uses']) or '(none)'}")
    echo(f"{'source':<24} {'release':<28} {'role':<13} {'weight':>7} {'share':>7} {'frames':>8}  losses")
    for s in m.sources:
        echo(f"{s['name']:<24} {s['release']:<28} {s['role']:<13} {s['weight']:>7g} {100 * s['share']:>6.1f}% "
             f"{s['num_frames']:>8}  {', '.join(s['losses'])}")
    return EXIT_OK


def cmd_mixture(args: argparse.Namespace) -> int:
    """`hvla mixture register SPEC` / `build NAME|SPEC` / `show NAME`."""
    if args.action == "show":
        return show(args.target, as_json=args.json)
    if args.action == "register":
        spec = _register(Path(args.target))
        echo(f"registered mixture {spec.name} ({len(spec.sources)} source(s)); `hvla mixture build {spec.name}` "
             "builds it")
        return EXIT_OK
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance, load_defs  # noqa: PLC0415
    from hvla_platform.cli.outcome import run_and_report  # noqa: PLC0415

    target = Path(args.target)
    lake = open_env_lake()
    from_file = target.suffix in (".yaml", ".yml")
    spec = (MixtureSpec.from_yaml(target.read_text(encoding="utf-8"), source=str(target)) if from_file
            else load_mixture_spec(lake, args.target))
    resolve_mixture(lake, spec)  # refused here, in one line, before anything is registered or run
    if from_file:
        _register(target)
    inst = instance()
    add_partitions(inst, MIXTURE_PARTITIONS, [spec.name])
    outcome, code = run_and_report("mixture", load_defs(), inst, "mixture_job", spec.name)
    built = outcome.materializations.get("mixture_release", {})
    if built.get("hvla/mixture"):
        what = "unchanged, cached" if built.get("status") == "cached" else "new immutable version"
        echo(f"mixture {spec.name} → {built['hvla/mixture']} ({what}; `hvla mixture show {spec.name}`)")
    return code


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``mixture`` to the ``hvla`` command."""
    p = sub.add_parser("mixture", help="co-training mixtures of published releases")
    p.add_argument("action", choices=["register", "build", "show"])
    p.add_argument("target", help="mixture spec YAML (register, build) or mixture name (build, show)")
    p.add_argument("--json", action="store_true", help="show: print the manifest as JSON")
    p.set_defaults(func=cmd_mixture)
