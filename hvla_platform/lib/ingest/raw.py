"""Validate landed episodes and publish them to the write-once raw layer.

For each complete landed episode of a (capture_day, robot_id) partition, :func:`ingest_partition`
runs the raw checks and then:

* publishes the episode under ``raw-mcap/<day>/<robot>/<episode>/`` (the bag's files, byte for
  byte and under the same relative paths as landed — ``<episode>_0.mcap``, the parts of a split
  bag, a rosbag2 directory ``<bag dir>/...`` or a ``.bag`` —, ``metadata.yaml``,
  ``operator_notes.md``, ``index.json`` and, last, the manifest) with **write-once** objects,
  provided the bag is readable and its rights block is valid — the raw layer is evidence;
* records every episode that failed any check in ``quarantine/<day>/<robot>/<episode>/reason.json``
  (with copies of the files when they could not be published to raw), and marks it
  ``convertible: false`` so it is not converted downstream.

The landing copy is never modified or deleted. The partition's outcome is written to
``raw-mcap/<day>/<robot>/_partition.json``.

Everything written names files by lake key (``mcap_key``: the bag's first data file, ``landing_key``,
``index.json``'s ``path``), never by URI or by the temporary local copy the checks ran on, so the raw
layer stays true when the lake is moved. A bag of several files (a split bag, a rosbag2 directory)
has one manifest input per file and lists its files in the manifest's ``files``; its ``sha256`` is
:func:`~hvla_platform.lib.formats.bags.index.bag_sha256` (the file's own sha256 for a one-file bag).

Raw checks (names used by the Dagster asset checks):

``readable``          every message of the bag can be read (:func:`~hvla_platform.lib.formats.bags.index.index_bag`):
                      MCAP strictly (CRCs, compression, truncation, record-size limit; see
                      :class:`~hvla_platform.lib.formats.mcap.index.McapScan`), each file of a
                      split bag; sqlite3 ``PRAGMA integrity_check`` and a full read with ``rosbags``;
                      ROS 1 a full read with ``rosbags``
``required_topics``   every required topic of the recording's robot profile (``metadata.yaml``
                      ``robot.profile``, else the default; :mod:`hvla_platform.lib.formats.recording.profile`)
                      is present, with its message type, and not empty; a missing one is named with
                      the profile and the closest topics found
``monotonic``         log times and header stamps never go backwards within a topic
``rights``            ``metadata.yaml`` keeps its contract (only known keys, identity present:
                      :mod:`hvla_platform.lib.formats.recording.metadata`) and has a valid rights
                      block (see :mod:`hvla_platform.lib.core.rights`)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

import yaml

from hvla_platform.lib.ingest.landing import METADATA, NOTES, keep_files, list_landed_episodes, read_identity
from hvla_platform.lib.core.keys import (
    PARTITION_INDEX,
    UnsafeIdError,
    check_day,
    check_id,
    landing_prefix,
    quarantine_prefix,
    raw_prefix,
)
from hvla_platform.lib.core.manifest import InputRef, build_manifest
from hvla_platform.lib.formats.bags.bag import Bag, open_bag
from hvla_platform.lib.formats.bags.index import BagIndex, index_bag
from hvla_platform.lib.formats.bags.profile_check import check_bag_against_profile
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.metadata import RecordingMetadataError, parse_recording_metadata
from hvla_platform.lib.formats.recording.profile import ProfileError, load_profile
from hvla_platform.lib.core.rights import Rights, RightsError
from hvla_platform.lib.core.lake import Lake, ObjectExistsError, sha256_file
from hvla_platform.lib.core.scratch import scratch_dir
from hvla_platform.lib.core.tables import check_partition_index
from hvla_platform.lib.core.withdrawals import partition_withdrawals

RAW_CHECKS = ("readable", "required_topics", "monotonic", "rights")
_Outcome = TypeVar("_Outcome")
_Result = TypeVar("_Result")


class CheckedOutcome:
    """What every source's raw ingest concludes about one landed unit (robot episode, teleop
    episode, human video clip): the shared part of :class:`EpisodeOutcome`,
    ``teleop.TeleopOutcome`` and ``human_video.ClipOutcome``.

    A mixin for dataclasses that have ``status`` (``published``, ``cached``, ``quarantined`` or
    ``conflict``) and ``checks`` (check name → ``{"passed": bool, "detail": str}``).
    :attr:`usable` is written by :meth:`to_dict` under :attr:`usable_key`.
    """

    status: str
    checks: dict[str, dict[str, Any]]
    #: The key under which :meth:`to_dict` writes :attr:`usable`.
    usable_key: ClassVar[str] = "usable"

    @property
    def usable(self) -> bool:
        """True if the unit is in raw (published or cached) and every check passed."""
        return self.status in ("published", "cached") and all(c["passed"] for c in self.checks.values())

    @property
    def reasons(self) -> list[str]:
        """``<check>: <detail>`` of each failed check, in check order."""
        return [f"{name}: {c['detail']}" for name, c in self.checks.items() if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the dataclass fields, :attr:`usable` under :attr:`usable_key`, and ``reasons``."""
        fields = asdict(self)  # type: ignore[call-overload]  # a mixin: ``self`` is a dataclass instance
        return {**fields, self.usable_key: self.usable, "reasons": self.reasons}


def publish_retained(lake: Lake, prefix: str, files: list[tuple[Path, str]], rights: Rights, *,
                     digest: tuple[str, str] | None = None) -> str:
    """Write-once upload of a unit's raw files — ``(local path, path relative to the unit)`` — to
    ``<prefix>/<relative path>``, WORM where the store enforces it (S3 Object Lock: kept until
    ``rights.retention_until``; :meth:`~hvla_platform.lib.core.lake.Lake.put_file_retained`).

    ``digest`` = ``(manifest field, content sha256)``: when the unit's manifest is already
    published, nothing is uploaded and the answer is ``"cached"`` if its field holds that sha256,
    ``"conflict"`` otherwise. An object already there with the same sha256 (a previous run crashed
    before its manifest) is kept; the first object with other content stops the upload
    (``"conflict"``: nothing is replaced).

    Returns:
        ``""`` when every file is in place (the caller then writes the manifest last:
        :func:`commit_manifest`), else ``"cached"`` or ``"conflict"``.

    Raises:
        OSError: a file cannot be read or the lake cannot be written.
    """
    if digest is not None:
        existing = lake.read_manifest(prefix)
        if existing is not None:
            return "cached" if existing.get(digest[0]) == digest[1] else "conflict"
    for p, rel in files:
        try:
            lake.put_file_retained(p, f"{prefix}/{rel}", retain_until=rights.retention_until)
        except ObjectExistsError:
            if lake.sha256(f"{prefix}/{rel}") != sha256_file(p):
                return "conflict"
    return ""


def commit_manifest(lake: Lake, prefix: str, manifest: dict[str, Any]) -> str:
    """Write a raw unit's manifest, the commit marker written after its files, write-once:
    ``"published"``, or ``"cached"`` when a concurrent or earlier run already committed it.

    Raises:
        OSError: the lake cannot be written.
    """
    try:
        lake.write_json(lake.manifest_key(prefix), manifest, write_once=True)
    except ObjectExistsError:
        return "cached"
    return "published"


@dataclass
class EpisodeOutcome(CheckedOutcome):
    """What ingest concluded about one landed episode.

    ``status``: ``published`` (newly in raw), ``cached`` (already in raw, same sha256),
    ``quarantined`` (not publishable: unreadable or no valid rights), ``conflict`` (raw already
    holds different content for this episode id; nothing was replaced).
    ``checks`` maps each of :data:`RAW_CHECKS` to ``{"passed": bool, "detail": str}``;
    ``mcap_key`` is the lake key of the published bag's first data file (relative; empty when not
    published); ``index`` the bag's :meth:`~hvla_platform.lib.formats.bags.index.BagIndex.to_dict`.
    """

    episode_id: str
    status: str
    sha256: str = ""
    mcap_key: str = ""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    rights: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] | None = None
    usable_key: ClassVar[str] = "convertible"

    @property
    def convertible(self) -> bool:
        """True if every raw check passed (the episode may be converted to HDF5): :attr:`usable`."""
        return self.usable


def _profile_name(metadata: dict) -> str | None:
    """``robot.profile`` of a parsed ``metadata.yaml`` (read leniently: the ``rights`` check reports
    a broken contract), None when it names none."""
    robot = metadata.get("robot") if isinstance(metadata, dict) else None
    name = robot.get("profile") if isinstance(robot, dict) else None
    return name if isinstance(name, str) and name else None


def _check_topics(bag: Bag, idx: BagIndex, name: str, profile_name: str | None) -> tuple[bool, str]:
    try:
        profile = load_profile(profile_name)
    except ProfileError as exc:
        return False, f"metadata.yaml: robot.profile: {exc}"
    match = check_bag_against_profile(bag, profile, measure_rates=False, topics=idx.topic_infos())
    if not match.topics_ok:
        return False, f"{name}: {match.missing_message()}"
    return True, f"all {match.required_count} required topics of robot profile {profile.key} present"


def _check_monotonic(idx: BagIndex, name: str) -> tuple[bool, str]:
    bad = [f"{t}: {s.log_time_backwards} log-time and {s.stamp_backwards} header-stamp step(s) backwards "
           f"(first at message {s.first_backwards_at} of the topic)"
           for t, s in idx.topics.items() if not s.monotonic]
    if bad:
        return False, f"{name}: " + "; ".join(bad)
    return True, "log times and header stamps non-decreasing on every topic"


def _shown(path: str | Path, root: Path) -> str:
    """``path`` relative to the recording folder ``root`` (its name when outside it)."""
    p = Path(path)
    try:
        return p.relative_to(root).as_posix() or p.name
    except ValueError:
        return p.name


def check_rights(metadata_path: Path, source: str, *, shown: str,
                 contract: Callable[[dict], None] | None = None,
                 ) -> tuple[dict[str, Any], Rights | None, dict]:
    """The ``rights`` raw check of a landed unit's ``metadata.yaml`` (robot episodes, teleop
    episodes): validated strictly (:func:`parse_recording_metadata`; an unknown or misspelled key
    is named with ``source`` and the closest valid key), then its rights block parsed
    (:meth:`Rights.from_episode_metadata`), then ``contract(metadata)``, the source's own rules
    (raising :class:`~hvla_platform.lib.core.rights.RightsError` with the one-line reason).

    Returns:
        ``(check, rights or None, metadata mapping)``: ``check`` is ``{"passed": True, "detail":
        "allowed uses: [...]"}`` or ``{"passed": False, "detail": <reason>}`` (a strict-contract
        reason starts with ``source``, any other with ``shown``); ``rights`` is the parsed block
        even when ``contract`` then failed; ``metadata`` is ``{}`` when the YAML is not a mapping.
        Never raises for bad input.
    """
    metadata: dict = {}
    rights = None
    try:
        loaded = yaml.safe_load(metadata_path.read_text(encoding="utf-8"))
        metadata = loaded if isinstance(loaded, dict) else {}
        parse_recording_metadata(loaded, source=source)
        rights = Rights.from_episode_metadata(loaded)
        if contract is not None:
            contract(metadata)
        return {"passed": True, "detail": f"allowed uses: {sorted(rights.allowed_uses)}"}, rights, metadata
    except RecordingMetadataError as exc:  # its message starts with the file
        return {"passed": False, "detail": str(exc)}, rights, metadata
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RightsError) as exc:
        return {"passed": False, "detail": f"{shown}: {exc}"}, rights, metadata


def evaluate_episode(bag_path: Path, metadata_path: Path, *, metadata_source: str | None = None,
                     ) -> tuple[dict[str, dict[str, Any]], BagIndex | None, Rights | None, dict]:
    """Run the raw checks on local copies of one episode's files.

    ``bag_path`` is the recording folder (or the bag itself: an ``.mcap`` file, a rosbag2
    directory...; see :func:`~hvla_platform.lib.formats.bags.bag.open_bag`). ``metadata.yaml`` is
    first validated strictly (:func:`parse_recording_metadata`: an unknown or misspelled key fails
    the ``rights`` check with a reason naming the key, the file — ``metadata_source``, by default the
    file's name — and the closest valid key), then its rights block is parsed. The required topics
    are those of the robot profile ``robot.profile`` names (the default profile when it names none;
    an unknown name fails ``required_topics`` with the closest known one).

    Returns ``(checks, index or None, rights or None, metadata mapping)``. Never raises for bad
    input: failures are reported in ``checks``, each failed detail starting with the file's name
    (relative to the recording folder).
    """
    checks: dict[str, dict[str, Any]] = {}
    checks["rights"], rights, metadata = check_rights(metadata_path, metadata_source or metadata_path.name,
                                                      shown=metadata_path.name)
    root = bag_path if bag_path.is_dir() else bag_path.parent
    idx = None
    try:
        bag = open_bag(bag_path)
        idx = index_bag(bag)
        name = _shown(bag.layout.display, root)
        checks["readable"] = {"passed": True, "detail": idx.describe()}
        ok, detail = _check_topics(bag, idx, name, _profile_name(metadata))
        checks["required_topics"] = {"passed": ok, "detail": detail}
        ok, detail = _check_monotonic(idx, name)
        checks["monotonic"] = {"passed": ok, "detail": detail}
    except RawLogError as exc:
        idx = None
        checks["readable"] = {"passed": False, "detail": f"{_shown(exc.path, root)}: {exc.reason}: {exc.detail}"}
        checks["required_topics"] = {"passed": False, "detail": "not checked: file unreadable"}
        checks["monotonic"] = {"passed": False, "detail": "not checked: file unreadable"}
    return checks, idx, rights, metadata


def _quarantine(lake: Lake, day: str, robot: str, outcome: EpisodeOutcome, local_files: list[tuple[Path, str]],
                copy_files: bool) -> None:
    """Write ``reason.json`` (and, with ``copy_files``, the files — ``(local path, relative path)`` —
    under ``files/<relative path>``)."""
    prefix = quarantine_prefix(day, robot, outcome.episode_id)
    if copy_files:
        keep_files(lake, f"{prefix}/files", local_files)  # the same landed files may be kept already
    lake.write_json(f"{prefix}/reason.json", {
        "episode_id": outcome.episode_id, "capture_day": day, "robot_id": robot, "stage": "raw_mcap",
        "status": outcome.status, "reasons": outcome.reasons, "sha256": outcome.sha256,
        "landing_key": landing_prefix(day, robot, outcome.episode_id),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })


def _publish_raw(lake: Lake, day: str, robot: str, ep: str, files: list[tuple[Path, str]], idx: BagIndex,
                 rights: Rights, metadata: dict) -> str:
    """Write-once publish of ``files`` (``(local path, path relative to the episode)``, the bag's
    files first); returns ``published``, ``cached`` or ``conflict``."""
    prefix = raw_prefix(day, robot, ep)
    status = publish_retained(lake, prefix, files, rights, digest=("mcap_sha256", idx.sha256))
    if status:
        return status
    first = idx.data_files[0].path
    mcap_key = f"{prefix}/{first}"
    lake.write_json(f"{prefix}/index.json", {**idx.to_dict(), "path": mcap_key})  # not the local copy's path
    lp = landing_prefix(day, robot, ep)
    if len(idx.files) == 1:
        inputs = [InputRef(key=f"{lp}/{first}", sha256=idx.sha256, kind="landing", episode_ids=[ep])]
        extra_files: dict[str, Any] = {}
    else:  # several files: each is an input, and the manifest lists them (lineage verifies each)
        inputs = [InputRef(key=f"{lp}/{f.path}", sha256=f.sha256, kind="landing", episode_ids=[ep]) for f in idx.files]
        extra_files = {"files": [{"path": f.path, "sha256": f.sha256, "bytes": f.size_bytes} for f in idx.files]}
    manifest = build_manifest(
        artifact_type="raw_mcap_episode",
        artifact_key=prefix,
        inputs=inputs,
        config={},
        rights=rights,
        episode_ids=[ep],
        extra={"mcap_key": mcap_key, "mcap_sha256": idx.sha256, "capture_day": day, "robot_id": robot,
               "operator": metadata.get("operator"), "site": metadata.get("site"),
               "customer": metadata.get("customer"), "task": metadata.get("task"), **extra_files},
    )
    return commit_manifest(lake, prefix, manifest)


def ingest_episode(lake: Lake, day: str, robot: str, ep: str) -> EpisodeOutcome:
    """Check one landed episode and publish it to raw and/or quarantine it (see module docstring).

    Every landed file of the episode is fetched to a scratch folder under its landed relative
    path; the bag is found there as in the recording folder (docs/recordings.md). Never raises for
    bad input (the outcome's checks say what is wrong); the landing copy is only read.

    Raises:
        UnsafeIdError: ``day``, ``robot`` or ``ep`` is not a safe id.
        OSError: the lake cannot be read or written.
    """
    check_day(day), check_id(robot, "robot id"), check_id(ep, "episode id")
    lp = landing_prefix(day, robot, ep)
    with scratch_dir("hvla-ingest", lake.scratch_root()) as tmpd:  # swept if this process dies
        rec = tmpd / ep  # named after the episode: reasons about the folder name it
        landed = [k[len(lp) + 1:] for k in lake.list_keys(lp)]
        outcome = EpisodeOutcome(episode_id=ep, status="quarantined")
        local: dict[str, Path] = {}
        for rel in landed:
            for part in rel.split("/"):  # landing checked them; a key is never trusted to be a path
                check_id(part, "landed file name")
            local[rel] = lake.get_file(f"{lp}/{rel}", rec / rel)
        meta_local = local[METADATA]
        checks, idx, rights, metadata = evaluate_episode(rec, meta_local, metadata_source=f"{lp}/{METADATA}")
        # the bag's files first (unreadable: every landed file but the metadata), then the metadata
        bag_rels = ([f.path for f in idx.files] if idx is not None
                    else sorted(r for r in landed if r not in (METADATA, NOTES)))
        files = [(local[r], r) for r in bag_rels] + [(meta_local, METADATA)]
        if NOTES in local:
            files.append((local[NOTES], NOTES))
        if not bag_rels:
            checks["readable"] = {"passed": False, "detail": "no bag landed (no .mcap, .bag or rosbag2 directory)"}
            checks["required_topics"] = {"passed": False, "detail": "not checked: no file"}
            checks["monotonic"] = {"passed": False, "detail": "not checked: no file"}
            outcome.checks = checks
            _quarantine(lake, day, robot, outcome, [(meta_local, METADATA)], copy_files=True)
            return outcome
        # the ids inside metadata.yaml must agree with where the episode landed
        try:
            ident = read_identity(metadata)
            if ident != (day, robot, ep):
                checks["rights"] = {"passed": False, "detail": f"metadata.yaml names {ident}, but the episode "
                                                               f"landed as {(day, robot, ep)}"}
        except UnsafeIdError as exc:
            checks["rights"] = {"passed": False, "detail": str(exc)}
        outcome.checks = checks
        outcome.metadata = {k: metadata.get(k) for k in ("operator", "site", "customer", "task", "capture_date")}
        outcome.rights = rights.to_dict() if rights else None
        if idx is not None:
            outcome.sha256 = idx.sha256
            outcome.index = {**idx.to_dict(), "path": f"{lp}/{idx.data_files[0].path}"}  # the landed key, not the local copy
        publishable = idx is not None and rights is not None and checks["rights"]["passed"]
        if publishable:
            assert idx is not None and rights is not None
            outcome.status = _publish_raw(lake, day, robot, ep, files, idx, rights, metadata)
            outcome.mcap_key = f"{raw_prefix(day, robot, ep)}/{idx.data_files[0].path}"
            if outcome.status in ("published", "cached") and outcome.index is not None:
                outcome.index["path"] = outcome.mcap_key
            if outcome.status == "conflict":
                outcome.checks["readable"] = {"passed": False, "detail": (
                    f"raw layer already holds a different {idx.data_files[0].path} for this episode id; nothing replaced")}
        if not outcome.convertible:
            _quarantine(lake, day, robot, outcome, files, copy_files=not publishable)
        return outcome


def ingest_each(units: list[str], ingest_one: Callable[[str], _Outcome], nothing_landed: str) -> list[_Outcome]:
    """``[ingest_one(unit) for unit in units]``, the completely landed units of one partition in
    order: the loop every source's partition ingest runs.

    Raises:
        ValueError: ``units`` is empty; the message is ``nothing_landed`` (it names where the landed
            units were expected).
    """
    if not units:
        raise ValueError(nothing_landed)
    return [ingest_one(unit) for unit in units]


def ingest_landed_partition(lake: Lake, day: str, part: str, *, landing: Callable[[str, str], str],
                            raw: Callable[[str, str], str], landed: Callable[[Lake, str, str], list[str]],
                            ingest_one: Callable[[Lake, str, str, str], Any],
                            result: Callable[[str, str, list[Any]], _Result], what: str, unit: str) -> _Result:
    """One partition's raw ingest for the teleop and human video sources: ``ingest_one(lake, day,
    part, id)`` for each id of ``landed(lake, day, part)`` (:func:`ingest_each`), gathered as
    ``result(day, part, outcomes)``, whose ``to_dict()`` is written to
    ``<raw(day, part)>/_partition.json``; returns that result.

    ``landing(day, part)`` is the partition's landing prefix; ``what`` (plural, e.g. ``clips``)
    and ``unit`` (e.g. ``clip``) word the error.

    Raises:
        ValueError: nothing landed completely: ``no complete <what> landed for partition
            <day>|<part> (expected <landing URI>/<unit>/metadata.yaml)``.
        OSError: the lake cannot be read or written.
    """
    missing = (f"no complete {what} landed for partition {day}|{part} "
               f"(expected {lake.uri(landing(day, part))}/<{unit}>/{METADATA})")
    outcomes = ingest_each(landed(lake, day, part), lambda u: ingest_one(lake, day, part, u), missing)
    out = result(day, part, outcomes)
    lake.write_json(f"{raw(day, part)}/{PARTITION_INDEX}", out.to_dict())  # type: ignore[attr-defined]
    return out


@dataclass
class PartitionIngestResult:
    """Outcome of :func:`ingest_partition` for one (capture_day, robot_id) partition (also the
    form of ``teleop.TeleopPartitionResult``: the same ``_partition.json`` shape)."""

    capture_day: str
    robot_id: str
    episodes: list[EpisodeOutcome]

    def failing(self, check: str) -> list[str]:
        """Episode ids that failed ``check``."""
        return [e.episode_id for e in self.episodes if not e.checks.get(check, {}).get("passed", False)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the content of ``_partition.json``)."""
        return {"capture_day": self.capture_day, "robot_id": self.robot_id,
                "episodes": [e.to_dict() for e in self.episodes]}


def ingest_partition(lake: Lake, day: str, robot: str) -> PartitionIngestResult:
    """Ingest every complete landed episode of a partition and write the partition index.

    Raises:
        UnsafeIdError: ``day`` or ``robot`` is not a safe id (before anything is read).
        ValueError: the partition has no landed episodes (``withdrawn: <n> episodes of this partition
            were withdrawn (consent <id>, <reason>; record <key>)`` when consent withdrawals removed them).
        TableError: the index built does not match its schema (checked before it is written).
    """
    check_day(day), check_id(robot, "robot id")
    episodes = list_landed_episodes(lake, day, robot)
    if not episodes:
        withdrawn = partition_withdrawals(lake, day, robot)
        if withdrawn is not None:
            raise ValueError(f"partition {day}|{robot} {withdrawn}; nothing left to ingest")
    result = PartitionIngestResult(day, robot, ingest_each(
        episodes, lambda ep: ingest_episode(lake, day, robot, ep),
        f"no complete episodes landed for partition {day}|{robot} "
        f"(expected {lake.uri(landing_prefix(day, robot))}/<episode>/metadata.yaml)"))
    key = f"{raw_prefix(day, robot)}/{PARTITION_INDEX}"
    lake.write_json(key, check_partition_index(result.to_dict(), where=lake.uri(key), capture_day=day,
                                               robot_id=robot))
    return result


def read_partition_index(lake: Lake, day: str, robot: str) -> dict[str, Any]:
    """The ``_partition.json`` written by the last :func:`ingest_partition` of this partition.

    Raises:
        FileNotFoundError: the partition was never ingested.
        TableError: the index does not match :func:`~hvla_platform.lib.core.tables.partition_index_schema`.
    """
    key = f"{raw_prefix(day, robot)}/{PARTITION_INDEX}"
    if not lake.exists(key):
        raise FileNotFoundError(f"partition {day}|{robot} has not been ingested ({lake.uri(key)} missing)")
    return check_partition_index(upgrade_partition_index(lake.read_json(key), day, robot), where=lake.uri(key),
                                 capture_day=day, robot_id=robot)


def upgrade_partition_index(doc: Any, day: str, robot: str) -> Any:
    """An index written before lake keys (rows with ``mcap_uri``, an absolute URI) in today's form:
    each row's ``mcap_key`` is ``raw-mcap/<day>/<robot>/<episode>/<the URI's file name>`` (the raw
    layout), ``""`` for an empty URI. Anything else is returned unchanged (and checked as it is)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("episodes"), list):
        return doc
    rows = []
    for r in doc["episodes"]:
        if isinstance(r, dict) and "mcap_uri" in r and "mcap_key" not in r:
            r = dict(r)
            uri = r.pop("mcap_uri")
            name = uri.rstrip("/").rsplit("/", 1)[-1] if isinstance(uri, str) else ""
            r["mcap_key"] = f"{raw_prefix(day, robot, str(r.get('episode_id')))}/{name}" if name else ""
        rows.append(r)
    return {**doc, "episodes": rows}
