"""How a bag maps to a robot profile: topics, types and rates found vs expected.

:func:`check_bag_against_profile` lists, for every stream of the profile (joint state, commands,
locomotion, task, cameras — required — and extras — optional), the expected topic, type and
nominal rate against what the bag holds: the type, the message count and the measured rate
(``(n - 1) / span`` over the header stamps, or the log times for types without a header). A
missing or mistyped topic is shown with the closest topics of the bag: topics of the same message
type that no other stream of the profile claims (a camera matches ``CompressedImage`` and raw
``Image`` alike), then topics with a similar name (:mod:`difflib`). Rates more than
:data:`RATE_TOLERANCE` (20 %) off the nominal rate are flagged; topics the profile does not name
are listed as extra. :func:`best_matching_profile` ranks the available profiles for a bag (to
suggest ``--profile``).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

from hvla_platform.lib.formats.bags.bag import Bag
from hvla_platform.lib.formats.bags.index import stamp_peeker
from hvla_platform.lib.formats.bags.messages import TopicInfo
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.profile import (
    MSG_COMPRESSED_IMAGE,
    MSG_IMAGE,
    RobotProfile,
    available_profiles,
    load_profile,
)

#: Largest relative difference between a measured and the nominal rate that still matches.
RATE_TOLERANCE = 0.2

_IMAGE_TYPES = (MSG_COMPRESSED_IMAGE, MSG_IMAGE)
_SHOW_CLOSEST = 3


@dataclass(frozen=True)
class StreamMatch:
    """One stream of the profile against the bag.

    Attributes:
        stream: the stream's place in the profile (``joint_state``, ``commands.arm``,
            ``cameras.head``, ``task``, ``locomotion``, ``extras.imu``).
        topic / expected_type / nominal_rate_hz: what the profile says (rate in Hz).
        required: False for ``extras`` (read when present).
        found_type: the type of ``topic`` in the bag (ROS 2 form), None when the bag has no such topic.
        message_count: messages on ``topic`` (0 when absent).
        rate_hz: measured rate, Hz (None: not measured, or fewer than 2 messages / zero span).
        rate_from: ``header stamps`` or ``log times`` (what ``rate_hz`` was measured on), or ``""``.
        closest: for a missing or mistyped topic, the bag's closest topics (best first).
        closest_types: the message types of ``closest``, in the same order.
    """

    stream: str
    topic: str
    expected_type: str
    nominal_rate_hz: float
    required: bool
    found_type: str | None = None
    message_count: int = 0
    rate_hz: float | None = None
    rate_from: str = ""
    closest: tuple[str, ...] = ()
    closest_types: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``ok``; ``missing`` / ``wrong_type`` / ``empty`` / ``rate_off`` (problems); ``absent``
        (an optional stream the bag does not carry: not a problem)."""
        if self.found_type is None or (not self.required and self.message_count == 0
                                       and self.found_type == self.expected_type):
            return "missing" if self.required else "absent"
        if self.found_type != self.expected_type:
            return "wrong_type"
        if self.message_count == 0:
            return "empty"
        if self.rate_hz is not None and abs(self.rate_hz - self.nominal_rate_hz) > RATE_TOLERANCE * self.nominal_rate_hz:
            return "rate_off"
        return "ok"

    @property
    def ok(self) -> bool:
        """True when the stream matches (or is an optional stream the bag does not carry)."""
        return self.status in ("ok", "absent")

    def closest_text(self) -> str:
        """``/a (type), /b (type)`` or ``none``."""
        if not self.closest:
            return "none"
        return ", ".join(f"{t} ({ty})" for t, ty in zip(self.closest, self.closest_types))

    def problem(self) -> str:
        """One phrase saying what is wrong (``""`` when :attr:`ok`)."""
        s = self.status
        if s == "missing":
            return f"missing {self.topic} ({self.expected_type})"
        if s == "wrong_type":
            return f"{self.topic} has type {self.found_type!r}, expected {self.expected_type!r}"
        if s == "empty":
            return f"{self.topic} is empty (channel registered, 0 messages)"
        if s == "rate_off":
            return (f"{self.topic} runs at {self.rate_hz:.3g} Hz ({self.rate_from}), nominal {self.nominal_rate_hz:g} Hz "
                    f"(more than {RATE_TOLERANCE:.0%} off)")
        return ""


@dataclass(frozen=True)
class ProfileMatch:
    """How one bag maps to one robot profile (:func:`check_bag_against_profile`).

    Attributes:
        profile: ``<name>@<version>``.
        description: the profile's description.
        bag: the bag (path as given), ``kind`` its kind, ``files`` its number of data files.
        streams: one :class:`StreamMatch` per stream of the profile, in profile order.
        extra_topics: topics of the bag the profile does not name.
        rates_measured: whether rates were measured (False: only names and types were compared).
    """

    profile: str
    description: str
    bag: str
    kind: str
    files: int
    streams: tuple[StreamMatch, ...]
    extra_topics: tuple[TopicInfo, ...] = field(default_factory=tuple)
    rates_measured: bool = True

    @property
    def ok(self) -> bool:
        """True when every stream matches: required topics present, typed as the profile says, not
        empty, rates within :data:`RATE_TOLERANCE`; optional ones absent or matching."""
        return all(s.ok for s in self.streams)

    @property
    def topics_ok(self) -> bool:
        """True when every required topic is present with its type and messages (rates aside):
        what raw ingest requires."""
        return not [s for s in self.streams if s.status in ("missing", "wrong_type", "empty")]

    @property
    def problems(self) -> list[str]:
        """One phrase per stream that does not match, in profile order."""
        return [s.problem() for s in self.streams if not s.ok]

    @property
    def matched_required(self) -> int:
        """Required streams whose topic is present with the expected type."""
        return sum(1 for s in self.streams if s.required and s.found_type == s.expected_type)

    @property
    def required_count(self) -> int:
        """Number of required streams."""
        return sum(1 for s in self.streams if s.required)

    def missing_message(self) -> str:
        """One line for a bag lacking required topics: the missing / mistyped / empty topics, the
        profile (``name@version``) and the closest topics found for each missing or mistyped one;
        ``""`` when :attr:`topics_ok`. (Rates are not part of it: see :meth:`format_text`.)"""
        bad = [s for s in self.streams if s.status in ("missing", "wrong_type", "empty")]
        if not bad:
            return ""
        closest = [f"{s.topic} -> {s.closest_text()}" for s in bad if s.status in ("missing", "wrong_type") and s.closest]
        searched = any(s.status in ("missing", "wrong_type") for s in bad)
        tail = (f"; closest topics in the bag: {'; '.join(closest)}" if closest
                else "; no topic of the bag is close to them" if searched else "")
        return f"{'; '.join(s.problem() for s in bad)} (robot profile {self.profile}{tail})"

    def format_text(self) -> str:
        """A readable report: one row per stream (stream, topic, type, rate found vs expected,
        status with the closest topics when missing), then the extra topics. No summary line."""
        head = [f"bag      {self.bag} ({self.kind}, {self.files} file(s))",
                f"profile  {self.profile}" + (f" - {self.description}" if self.description else "")]
        rows = [("stream", "topic", "type expected / found", "msgs", "rate Hz found / nominal", "status")]
        for s in self.streams:
            found = "-" if s.found_type is None else ("same" if s.found_type == s.expected_type else s.found_type)
            if not self.rates_measured:
                rate = f"- / {s.nominal_rate_hz:g}"
            else:
                rate = f"{s.rate_hz:.3g} / {s.nominal_rate_hz:g}" if s.rate_hz is not None else f"- / {s.nominal_rate_hz:g}"
            status = s.status + ("" if s.required else " (optional)")
            if s.status in ("missing", "wrong_type"):
                status += f"; closest: {s.closest_text()}"
            rows.append((s.stream, s.topic, f"{s.expected_type} / {found}", str(s.message_count), rate, status))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines = head + [""] + ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
        if self.extra_topics:
            lines += ["", "topics the profile does not name:"]
            lines += [f"  {t.topic}  {t.msgtype}  {t.message_count} msgs" for t in self.extra_topics]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the fields, each stream with its ``status`` and ``problem``, plus ``ok``."""
        d = asdict(self)
        d["streams"] = [{**asdict(s), "status": s.status, "problem": s.problem()} for s in self.streams]
        d["ok"] = self.ok
        d["topics_ok"] = self.topics_ok
        d["problems"] = self.problems
        return d


def profile_streams(profile: RobotProfile) -> list[tuple[str, str, str, float, bool]]:
    """``(stream, topic, type, nominal rate Hz, required)`` of every stream of ``profile``, in order:
    joint state, commands, locomotion, task, cameras, extras."""
    out = [("joint_state", profile.joint_state.topic, profile.joint_state.type, profile.joint_state.rate_hz, True)]
    out += [(f"commands.{k}", c.topic, c.type, c.rate_hz, True) for k, c in profile.commands.items()]
    if profile.locomotion is not None:
        out.append(("locomotion", profile.locomotion.topic, profile.locomotion.type, profile.locomotion.rate_hz, True))
    out.append(("task", profile.task.topic, profile.task.type, profile.task.rate_hz, True))
    out += [(f"cameras.{k}", c.topic, c.type, c.rate_hz, True) for k, c in profile.cameras.items()]
    out += [(f"extras.{k}", e.topic, e.type, e.rate_hz, False) for k, e in profile.extras.items()]
    return out


def _family(msgtype: str) -> str:
    return "image" if msgtype in _IMAGE_TYPES else msgtype


def _closest(topic: str, msgtype: str, found: dict[str, TopicInfo], claimed: set[str]) -> list[str]:
    free = [t for t in found if t not in claimed]
    same = [t for t in free if _family(found[t].msgtype) == _family(msgtype)]
    same.sort(key=lambda t: (-difflib.SequenceMatcher(None, topic, t).ratio(), t))
    named = difflib.get_close_matches(topic, free, n=_SHOW_CLOSEST, cutoff=0.5)
    return list(dict.fromkeys(same + named))[:_SHOW_CLOSEST]


def _measure(bag: Bag, topics: list[str]) -> dict[str, tuple[float, str]]:
    """Topic → (rate Hz, what it was measured on) for topics with ≥ 2 messages and a time span."""
    peek = stamp_peeker(bag)
    acc: dict[str, list] = {}  # topic -> [n, first_stamp, last_stamp, first_log, last_log, all_stamped]
    for raw in bag.raw_messages(topics):
        try:
            stamp = peek(raw)
        except ValueError as exc:
            raise RawLogError(bag.files[raw.file_index], "undecodable",
                              f"topic {raw.topic} message at log time {raw.log_ns}: {exc}") from exc
        a = acc.setdefault(raw.topic, [0, None, None, raw.log_ns, raw.log_ns, True])
        a[0] += 1
        a[3], a[4] = min(a[3], raw.log_ns), max(a[4], raw.log_ns)
        if stamp is None:
            a[5] = False
        else:
            a[1] = stamp if a[1] is None else min(a[1], stamp)
            a[2] = stamp if a[2] is None else max(a[2], stamp)
    out = {}
    for topic, (n, fs, ls, fl, ll, stamped) in acc.items():
        if n < 2:
            continue
        if stamped and fs is not None and ls > fs:
            out[topic] = ((n - 1) / ((ls - fs) / 1e9), "header stamps")
        elif ll > fl:
            out[topic] = ((n - 1) / ((ll - fl) / 1e9), "log times")
    return out


def check_bag_against_profile(bag: Bag, profile: RobotProfile, *, measure_rates: bool = True,
                              topics: dict[str, TopicInfo] | None = None) -> ProfileMatch:
    """Compare ``bag`` with ``profile`` (see the module docstring).

    Args:
        bag: the bag (:func:`~hvla_platform.lib.formats.bags.bag.open_bag`).
        profile: the robot profile.
        measure_rates: read the messages of the profile's topics to measure their rates (the
            message data is not decoded; only header stamps are peeked). False compares names,
            types and counts only.
        topics: the bag's topics when already known (e.g. :meth:`BagIndex.topic_infos` after a
            full read); default :meth:`Bag.topics`.

    Returns:
        The :class:`ProfileMatch`.

    Raises:
        RawLogError: the bag cannot be read (``unreadable`` / ``too_large``), or a message is too
            short for the header its type declares (``undecodable``).
    """
    found = bag.topics() if topics is None else topics
    streams_def = profile_streams(profile)
    claimed = {topic for _, topic, _, _, _ in streams_def if topic in found}
    present = [topic for _, topic, typ, _, _ in streams_def if topic in found and found[topic].msgtype == typ]
    rates = _measure(bag, present) if measure_rates and present else {}
    streams = []
    for stream, topic, typ, rate, required in streams_def:
        info = found.get(topic)
        closest: list[str] = []
        if info is None or info.msgtype != typ:
            closest = _closest(topic, typ, found, claimed)
        r = rates.get(topic)
        streams.append(StreamMatch(
            stream=stream, topic=topic, expected_type=typ, nominal_rate_hz=rate, required=required,
            found_type=info.msgtype if info else None, message_count=info.message_count if info else 0,
            rate_hz=r[0] if r else None, rate_from=r[1] if r else "",
            closest=tuple(closest), closest_types=tuple(found[t].msgtype for t in closest)))
    named = {topic for _, topic, _, _, _ in streams_def}
    extra = tuple(info for t, info in found.items() if t not in named)
    return ProfileMatch(profile=profile.key, description=profile.description, bag=str(bag.layout.display),
                        kind=bag.kind, files=len(bag.files), streams=tuple(streams), extra_topics=extra,
                        rates_measured=measure_rates)


def best_matching_profile(bag: Bag, names: list[str] | None = None) -> list[tuple[str, int, int]]:
    """Rank profiles by how many of their required topics the bag carries with the right type.

    Args:
        bag: the bag.
        names: profile names to rank (default: every available profile,
            :func:`~hvla_platform.lib.formats.recording.profile.available_profiles`).

    Returns:
        ``[(profile key, matched required topics, required topics), ...]``, best first (most
        matched, then highest fraction, then name); profiles matching nothing are left out.

    Raises:
        ProfileError: a named profile is unknown or invalid.
        RawLogError: the bag cannot be read.
    """
    out = []
    for name in names if names is not None else sorted(available_profiles()):
        m = check_bag_against_profile(bag, load_profile(name), measure_rates=False)
        if m.matched_required:
            out.append((m.profile, m.matched_required, m.required_count))
    out.sort(key=lambda r: (-r[1], -r[1] / r[2], r[0]))
    return out
