"""Release-level QA: checks that judge a release as a whole, not one episode at a time.

The per-episode checks of the processing stage (docs/qa.md) judge each recording on its own and
gate it out of releases. These checks look at what only the whole release shows — an episode much
longer than its siblings, a joint that never moves, statistics that moved since the previous
version, tasks with too few demonstrations, episodes shorter than a policy's action chunk, a camera
whose exposure or sharpness in one episode is far from the same camera's norm. They are
**warnings**: they never block a release nor exclude an episode. What they flag is relative to
the release (an outlier among these episodes, a drift since the last version, a balance between
tasks) and often intended — a new task in a new version, a deliberately long recovery episode —
so the decision stays with a supervisor, who reads the findings on the dataset card and on the
``lerobot_dataset`` asset checks (both rendered from the one :class:`ReleaseQA` recorded in the
release manifest's ``release_checks``).

=========================  ===============================================================
check                      fails when
=========================  ===============================================================
episode_length_outliers    an episode's length has a modified z-score |M| > 3.5
                           (Iglewicz & Hoaglin 1993) among the release's episodes
constant_features          an ``observation.state`` / ``action`` dimension has std < 1e-4
                           over the train split (``meta/stats.json``)
distribution_drift         a dimension's mean moved by more than 0.5 pooled std (standardized
                           mean difference, Cohen 1988) since the previous version of the line
task_coverage              a task has fewer than 10 train episodes, or the largest / smallest
                           train episode count per task exceeds 9
action_chunk_fit           a train episode is shorter than the action horizon (50 frames:
                           openpi's ``action_horizon``)
camera_image_outliers      an episode's exposure or sharpness of a camera has |M| > 3.5 among
                           the release's episodes of that camera
=========================  ===============================================================

Every threshold is a field of :class:`ReleaseQAThresholds` (its docstring gives the source of
each); a release spec overrides them under its ``qa`` key (lib/dataset/spec.py). A check that
has too little to judge (fewer than 5 episodes, no previous version, no train split, no camera
statistics recorded) says so: its status is ``not_judged``, never ``passed``.

No Dagster here: lib/dataset/build.py computes the findings at build time from the release's
episode rows, its ``meta/stats.json`` (and the previous version's) and the episodes' QA metrics
(the ``episodes-hdf5`` manifests' ``conversions[*].qa_metrics``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import median_abs_deviation

from hvla_platform.lib.core import features
from hvla_platform.lib.dataset.norm_stats_build import MIN_STD
from hvla_platform.lib.dataset.openpi_export import DEFAULT_ACTION_HORIZON

#: The release checks, in report order (card, asset checks, manifest).
RELEASE_CHECKS = ("episode_length_outliers", "constant_features", "distribution_drift", "task_coverage",
                  "action_chunk_fit", "camera_image_outliers")
#: A check's status: ``not_judged`` when it had too little to judge (the detail says why).
STATUSES = ("passed", "failed", "not_judged")
#: Per-episode QA metrics (``qa_metrics``) the camera check reads: camera → median over the
#: episode's frames of each frame's mean pixel value (all RGB values, 0–255: the level
#: ``camera_black`` uses), and camera → median variance of the Laplacian (sharpness).
EXPOSURE_METRIC, SHARPNESS_METRIC = "camera_exposure", "camera_sharpness"
#: The features the constant and drift checks judge, per dimension.
JOINT_FEATURES = (features.STATE, features.ACTION)
#: Φ⁻¹(0.75): makes the MAD a consistent estimate of σ for normal data (Iglewicz & Hoaglin 1993).
_MAD_TO_SIGMA = 0.6745


@dataclass(frozen=True)
class ReleaseQAThresholds:
    """Thresholds of the release checks (overridable per release: the spec's ``qa`` key).

    Attributes:
        max_modified_z: |modified z| above which an episode's length, exposure or sharpness is an
            outlier. 3.5: Iglewicz & Hoaglin (1993), *How to Detect and Handle Outliers*, the
            modified z-score M = 0.6745 (x − median) / MAD.
        min_episodes_for_outliers: fewer episodes (or measured episodes of a camera) than this
            are not judged: a median and MAD of 4 values say little. 5.
        mad_floor_fraction: the MAD used is at least this fraction of |median|, so a set of
            near-identical values (scripted episodes of exactly 90 frames: MAD 0) does not turn a
            one-frame difference into an outlier; with 0.02, the smallest deviation flagged when
            the MAD collapses is 3.5 / 0.6745 × 2 % ≈ 10 % of the median. Our choice.
        min_std: a state/action dimension whose std over the train split is below this
            (feature units: rad for joints) is constant. 1e-4: the ``norm_stats`` asset's
            ``min_std`` (normalising by it divides by ~0).
        max_drift_smd: standardized mean difference |m₁ − m₀| / s_pooled of a dimension between
            this and the previous version above which it drifted. 0.5: Cohen (1988), *Statistical
            Power Analysis for the Behavioral Sciences*, a "medium" effect.
        min_episodes_per_task: a task with fewer train episodes is under-covered. 10: LeRobot's
            data-gathering guidance ("at least 50 episodes, with 10 episodes per location",
            docs: il_robots, Tips for gathering data) — its smallest unit of variation.
        max_task_imbalance: largest / smallest train episode count per task above which the
            release is imbalanced. 9: the imbalance ratio Fernández et al. (2008) call high
            (1.5–9 low, > 9 high) in the class-imbalance literature.
        action_horizon: frames per action chunk; a train episode shorter than this never fills
            one chunk (lerobot-doctor's policy-compatibility gate). 50: openpi
            ``Pi0Config.action_horizon`` (:data:`~hvla_platform.lib.dataset.openpi_export.DEFAULT_ACTION_HORIZON`,
            what the release's openpi export uses by default).
    """

    max_modified_z: float = 3.5
    min_episodes_for_outliers: int = 5
    mad_floor_fraction: float = 0.02
    min_std: float = MIN_STD
    max_drift_smd: float = 0.5
    min_episodes_per_task: int = 10
    max_task_imbalance: float = 9.0
    action_horizon: int = DEFAULT_ACTION_HORIZON

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Any] | None) -> "ReleaseQAThresholds":
        """The defaults with ``overrides`` (a release spec's ``qa`` mapping, already validated by
        the spec) applied.

        Raises:
            ValueError: a key is not a threshold (the message names it).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides or {}) - names)
        if unknown:
            raise ValueError(f"unknown release QA threshold(s) {unknown}; known: {sorted(names)}")
        return replace(cls(), **dict(overrides or {}))


@dataclass(frozen=True)
class ReleaseCheck:
    """One release check's finding.

    Attributes:
        check: its name (:data:`RELEASE_CHECKS`).
        status: ``passed``, ``failed`` or ``not_judged`` (:data:`STATUSES`).
        detail: one line: what was found, with the numbers, naming the episodes / features (for
            ``not_judged``: why not).
        episodes: the episode ids the finding names (failing ones; for the camera check also the
            episodes not measured).
        features: the features or dimensions it names (``observation.state waist_yaw_joint``).
        values: the numbers behind it (JSON-serialisable; per check, see :func:`run_release_checks`).
    """

    check: str
    status: str
    detail: str
    episodes: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """False only when the check failed (``not_judged`` is not a failure; its detail says why)."""
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (as recorded in the release manifest)."""
        return {"check": self.check, "status": self.status, "detail": self.detail, "episodes": list(self.episodes),
                "features": list(self.features), "values": dict(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ReleaseCheck":
        """Inverse of :meth:`to_dict`."""
        return cls(check=d["check"], status=d["status"], detail=d["detail"], episodes=tuple(d.get("episodes", ())),
                   features=tuple(d.get("features", ())), values=dict(d.get("values", {})))


@dataclass(frozen=True)
class ReleaseQA:
    """Every release check's finding for one release version, with the thresholds used.

    Attributes:
        thresholds: the thresholds applied.
        previous_release: the version drift was measured against (``None``: none).
        checks: one :class:`ReleaseCheck` per :data:`RELEASE_CHECKS` name, in that order.
    """

    thresholds: ReleaseQAThresholds
    previous_release: str | None
    checks: tuple[ReleaseCheck, ...]

    def check(self, name: str) -> ReleaseCheck:
        """The finding of check ``name``.

        Raises:
            KeyError: no such check.
        """
        for c in self.checks:
            if c.check == name:
                return c
        raise KeyError(f"no release check {name!r}; checks: {[c.check for c in self.checks]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the manifest's ``release_checks``."""
        return {"thresholds": asdict(self.thresholds), "previous_release": self.previous_release,
                "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ReleaseQA":
        """Inverse of :meth:`to_dict`."""
        return cls(thresholds=ReleaseQAThresholds(**d["thresholds"]), previous_release=d.get("previous_release"),
                   checks=tuple(ReleaseCheck.from_dict(c) for c in d["checks"]))


@dataclass(frozen=True)
class PreviousVersion:
    """The previous version of the release line, for the drift check.

    Attributes:
        release: its version id.
        stats: its ``meta/stats.json`` as parsed JSON (``None``: it has none, an evaluation-only
            version).
        feature_names: feature → dimension names (its ``meta/info.json`` ``names``).
    """

    release: str
    stats: Mapping[str, Any] | None
    feature_names: Mapping[str, Sequence[str]]


# ---- helpers --------------------------------------------------------------------------------------


def modified_z(values: Sequence[float], floor_fraction: float) -> tuple[np.ndarray, float, float, float]:
    """Modified z-scores M = 0.6745 (x − median) / MAD (Iglewicz & Hoaglin 1993), the MAD
    (``scipy.stats.median_abs_deviation``, unscaled) floored at ``floor_fraction`` × |median|.

    Returns:
        ``(M, median, mad, scale)``: M float64 (n,); ``scale`` is the floored MAD used. When the
        scale is 0 (every value equal and the median 0), values equal to the median get 0 and
        any other ±inf.
    """
    x = np.asarray(values, dtype=np.float64)
    med = float(np.median(x))
    mad = float(median_abs_deviation(x, scale=1.0))
    scale = max(mad, floor_fraction * abs(med))
    if scale == 0.0:
        return np.where(x == med, 0.0, np.copysign(np.inf, x - med)), med, mad, scale
    return _MAD_TO_SIGMA * (x - med) / scale, med, mad, scale


def _g(x: float) -> float:
    """A number as recorded: 6 significant digits (stable text, JSON-safe: inf → None)."""
    return float(f"{x:.6g}") if math.isfinite(x) else None  # type: ignore[return-value]


def _eps(ids: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _not_judged(check: str, why: str, **values: Any) -> ReleaseCheck:
    return ReleaseCheck(check, "not_judged", why, values=values)


def _train(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["split"] == "train"]


# ---- the checks ------------------------------------------------------------------------------------


def episode_length_outliers(rows: Sequence[Mapping[str, Any]], th: ReleaseQAThresholds) -> ReleaseCheck:
    """Episodes (train and held out) whose length ``num_frames`` has |M| > ``max_modified_z``
    among the release's episodes (:func:`modified_z`). ``values``: median, mad, scale (frames),
    ``outliers`` {episode: {num_frames, modified_z}}, ``max_abs_modified_z``."""
    name = "episode_length_outliers"
    if len(rows) < th.min_episodes_for_outliers:
        return _not_judged(name, f"{len(rows)} episode(s), fewer than the {th.min_episodes_for_outliers} a median/MAD "
                                 "outlier test needs (min_episodes_for_outliers)", episodes=len(rows))
    ids = [r["episode_id"] for r in rows]
    n = [int(r["num_frames"]) for r in rows]
    z, med, mad, scale = modified_z(n, th.mad_floor_fraction)
    flagged = np.flatnonzero(np.abs(z) > th.max_modified_z)
    out = {ids[i]: {"num_frames": n[i], "modified_z": _g(float(z[i]))} for i in flagged}
    values = {"median_frames": _g(med), "mad_frames": _g(mad), "scale_frames": _g(scale),
              "max_abs_modified_z": _g(float(np.max(np.abs(z)))), "outliers": out}
    basis = (f"median {med:g} frames, MAD {mad:g} (scale {scale:g} after the {th.mad_floor_fraction:g} × median "
             f"floor), |M| > {th.max_modified_z:g}")
    if out:
        listed = "; ".join(f"{ids[i]}: {n[i]} frames (M {z[i]:+.1f})" for i in flagged)
        return ReleaseCheck(name, "failed", f"{len(out)} of {len(rows)} episode(s) of abnormal length — {listed}; "
                                            f"{basis}", episodes=tuple(out), values=values)
    return ReleaseCheck(name, "passed", f"no abnormal length among {len(rows)} episodes: largest |M| "
                                        f"{float(np.max(np.abs(z))):.2f}; {basis}", values=values)


def _dims(stats: Mapping[str, Any], key: str, names: Sequence[str] | None, stat: str) -> dict[str, float]:
    vals = [float(v) for v in np.asarray(stats[key][stat], dtype=np.float64).reshape(-1)]
    labels = list(names) if names and len(names) == len(vals) else [f"[{i}]" for i in range(len(vals))]
    return dict(zip(labels, vals))


def constant_features(stats: Mapping[str, Any] | None, feature_names: Mapping[str, Sequence[str]],
                      th: ReleaseQAThresholds) -> ReleaseCheck:
    """``observation.state`` / ``action`` dimensions whose std over the train split
    (``meta/stats.json``) is below ``min_std``, named by joint. ``values``: ``constant``
    {"<feature> <joint>": std}, ``min_std_found`` and where."""
    name = "constant_features"
    present = [k for k in JOINT_FEATURES if stats and k in stats]
    if not present:
        return _not_judged(name, "no train statistics (no meta/stats.json: an evaluation-only release)")
    stds = {f"{k} {j}": s for k in present for j, s in _dims(stats, k, feature_names.get(k), "std").items()}
    const = {d: _g(s) for d, s in stds.items() if s < th.min_std}
    lowest = min(stds, key=lambda d: stds[d])
    values = {"constant": const, "min_std_found": _g(stds[lowest]), "min_std_at": lowest}
    dims = ", ".join(f"{k} ({np.asarray(stats[k]['std']).size})" for k in present)  # type: ignore[index]
    if const:
        listed = "; ".join(f"{d}: std {s:.2e}" for d, s in const.items())
        return ReleaseCheck(name, "failed", f"{len(const)} constant dimension(s) over the train split (std < "
                                            f"{th.min_std:g}) — {listed}", features=tuple(const), values=values)
    return ReleaseCheck(name, "passed", f"every dimension of {dims} varies over the train split: smallest std "
                                        f"{stds[lowest]:.2e} ({lowest}) ≥ {th.min_std:g}", values=values)


def distribution_drift(stats: Mapping[str, Any] | None, feature_names: Mapping[str, Sequence[str]],
                       previous: PreviousVersion | None, th: ReleaseQAThresholds) -> ReleaseCheck:
    """Per dimension of ``observation.state`` and ``action`` (matched by joint name), the
    standardized mean difference d = |m₁ − m₀| / s_p with the pooled std
    s_p = √(((n₁−1)s₁² + (n₀−1)s₀²) / (n₁+n₀−2)) (Cohen 1988; n = train frames, the stats'
    ``count``) between this version's and the previous version's train statistics; fails when
    d > ``max_drift_smd``. ``values``: previous_release, ``drifted`` {dim: {mean_previous, mean,
    pooled_std, smd}}, max_smd and where, ``not_compared`` (dims in one version only)."""
    name = "distribution_drift"
    if previous is None:
        return _not_judged(name, "no previous version of this release line to compare with")
    if not previous.stats or not any(k in previous.stats for k in JOINT_FEATURES):
        return _not_judged(name, f"the previous version {previous.release} has no train statistics "
                                 "(an evaluation-only release)", previous_release=previous.release)
    if not stats or not any(k in stats for k in JOINT_FEATURES):
        return _not_judged(name, "this version has no train statistics (an evaluation-only release)",
                           previous_release=previous.release)
    smd: dict[str, dict[str, float]] = {}
    not_compared: list[str] = []
    for k in JOINT_FEATURES:
        if k not in stats or k not in previous.stats:
            not_compared.append(k)
            continue
        m1, s1 = _dims(stats, k, feature_names.get(k), "mean"), _dims(stats, k, feature_names.get(k), "std")
        m0 = _dims(previous.stats, k, previous.feature_names.get(k), "mean")
        s0 = _dims(previous.stats, k, previous.feature_names.get(k), "std")
        n1 = int(np.asarray(stats[k]["count"]).reshape(-1)[0])
        n0 = int(np.asarray(previous.stats[k]["count"]).reshape(-1)[0])
        not_compared += [f"{k} {j}" for j in sorted(set(m1) ^ set(m0))]
        for j in [j for j in m1 if j in m0]:
            pooled = math.sqrt(((n1 - 1) * s1[j] ** 2 + (n0 - 1) * s0[j] ** 2) / max(n1 + n0 - 2, 1))
            diff = abs(m1[j] - m0[j])
            d = diff / pooled if pooled > 0 else (0.0 if diff == 0 else math.inf)
            smd[f"{k} {j}"] = {"mean_previous": _g(m0[j]), "mean": _g(m1[j]), "pooled_std": _g(pooled), "smd": _g(d)}
    if not smd:
        return _not_judged(name, f"no dimension in common with {previous.release}", previous_release=previous.release,
                           not_compared=not_compared)
    top = max(smd, key=lambda d: math.inf if smd[d]["smd"] is None else smd[d]["smd"])
    drifted = {d: v for d, v in smd.items() if v["smd"] is None or v["smd"] > th.max_drift_smd}
    values = {"previous_release": previous.release, "drifted": drifted, "max_smd": smd[top]["smd"],
              "max_smd_at": top, "not_compared": not_compared}
    tail = f" ({len(not_compared)} not compared: {_eps(not_compared, 4)})" if not_compared else ""
    if drifted:
        listed = "; ".join(f"{d}: mean {v['mean_previous']:.4g} → {v['mean']:.4g}, pooled std {v['pooled_std']:.3g}, "
                           f"SMD {'inf' if v['smd'] is None else format(v['smd'], '.2f')}" for d, v in drifted.items())
        return ReleaseCheck(name, "failed", f"{len(drifted)} of {len(smd)} dimension(s) drifted since "
                                            f"{previous.release} (SMD > {th.max_drift_smd:g}) — {listed}{tail}",
                            features=tuple(drifted), values=values)
    return ReleaseCheck(name, "passed", f"no drift since {previous.release} over {len(smd)} dimensions: largest SMD "
                                        f"{smd[top]['smd']:.2f} ({top}) ≤ {th.max_drift_smd:g}{tail}", values=values)


def task_coverage(rows: Sequence[Mapping[str, Any]], th: ReleaseQAThresholds) -> ReleaseCheck:
    """Episodes and frames per task, judged on the train split (what a policy learns from):
    fails when a task has fewer than ``min_episodes_per_task`` train episodes (a task only in
    the held-out split has 0) or the largest / smallest train episode count over the tasks that
    have train episodes exceeds ``max_task_imbalance``. ``values``: ``tasks`` {task:
    {train_episodes, train_frames, heldout_episodes, heldout_frames, train_frame_share}} (sorted
    by task), imbalance, ``too_few`` [tasks]."""
    name = "task_coverage"
    tasks: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["task"]):
        t = tasks.setdefault(r["task"], {"train_episodes": 0, "train_frames": 0, "heldout_episodes": 0,
                                         "heldout_frames": 0})
        split = "train" if r["split"] == "train" else "heldout"
        t[f"{split}_episodes"] += 1
        t[f"{split}_frames"] += int(r["num_frames"])
    train_frames = sum(t["train_frames"] for t in tasks.values())
    for t in tasks.values():
        t["train_frame_share"] = _g(t["train_frames"] / train_frames) if train_frames else None
    if not train_frames:
        return _not_judged(name, "no train split (an evaluation-only release)", tasks=tasks)
    counts = {k: t["train_episodes"] for k, t in tasks.items() if t["train_episodes"]}
    ratio = max(counts.values()) / min(counts.values())
    too_few = [k for k, t in tasks.items() if t["train_episodes"] < th.min_episodes_per_task]
    values = {"tasks": tasks, "imbalance": _g(ratio), "too_few": too_few,
              "largest_task": max(counts, key=lambda k: (counts[k], k)),
              "smallest_task": min(counts, key=lambda k: (counts[k], k))}
    basis = (f"{len(tasks)} task(s), train episodes per task {min(counts.values())}–{max(counts.values())}, "
             f"imbalance {ratio:.1f} (largest / smallest; max_task_imbalance {th.max_task_imbalance:g}, "
             f"min_episodes_per_task {th.min_episodes_per_task})")
    problems = []
    if too_few:
        problems.append(f"{len(too_few)} task(s) with fewer than {th.min_episodes_per_task} train episodes: "
                        + "; ".join(f"'{k}' ({tasks[k]['train_episodes']})" for k in too_few))
    if ratio > th.max_task_imbalance:
        problems.append(f"imbalance {ratio:.1f} > {th.max_task_imbalance:g} ('{values['largest_task']}' "
                        f"{counts[values['largest_task']]} vs '{values['smallest_task']}' "
                        f"{counts[values['smallest_task']]})")
    if problems:
        return ReleaseCheck(name, "failed", " — ".join(["; ".join(problems), basis]), values=values)
    return ReleaseCheck(name, "passed", basis, values=values)


def action_chunk_fit(rows: Sequence[Mapping[str, Any]], th: ReleaseQAThresholds) -> ReleaseCheck:
    """Train episodes with fewer frames than ``action_horizon``: a policy predicting chunks of
    that many actions never sees a full chunk of them (lerobot-doctor's policy-compatibility
    gate). ``values``: action_horizon, ``short`` {episode: num_frames}, shortest_train_frames."""
    name = "action_chunk_fit"
    train = _train(rows)
    if not train:
        return _not_judged(name, "no train split (an evaluation-only release)", action_horizon=th.action_horizon)
    short = {r["episode_id"]: int(r["num_frames"]) for r in train if int(r["num_frames"]) < th.action_horizon}
    shortest = min(int(r["num_frames"]) for r in train)
    values = {"action_horizon": th.action_horizon, "short": short, "shortest_train_frames": shortest}
    if short:
        listed = ", ".join(f"{e} ({n})" for e, n in short.items())
        return ReleaseCheck(name, "failed", f"{len(short)} of {len(train)} train episode(s) shorter than the action "
                                            f"horizon of {th.action_horizon} frames: {listed}",
                            episodes=tuple(short), values=values)
    return ReleaseCheck(name, "passed", f"all {len(train)} train episodes have ≥ {th.action_horizon} frames (the "
                                        f"action horizon); shortest {shortest}", values=values)


def _measured(qa_metrics: Mapping[str, Mapping[str, Any]], ep: str, metric: str, camera: str) -> float | None:
    v = (qa_metrics.get(ep) or {}).get(metric)
    v = v.get(camera) if isinstance(v, Mapping) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def camera_image_outliers(rows: Sequence[Mapping[str, Any]], qa_metrics: Mapping[str, Mapping[str, Any]],
                          cameras: Sequence[str], th: ReleaseQAThresholds) -> ReleaseCheck:
    """Per camera, episodes whose exposure (``qa_metrics["camera_exposure"][camera]``, median of
    the frames' mean pixel values, 0–255) or sharpness (``qa_metrics["camera_sharpness"][camera]``, variance of the
    Laplacian, compared as log(1 + v): blur scales it by a factor) has |M| >
    ``max_modified_z`` among the release's measured episodes of that camera (:func:`modified_z`).
    An episode without the metric (converted before it was recorded, or a camera with no usable
    frame) is **not measured**: it is listed, never counted as passing; a camera with fewer than ``min_episodes_for_outliers``
    measured episodes is not judged. ``values``: ``per_camera`` {camera: {metric: {median,
    measured, outliers {episode: {value, modified_z}}}}}, ``not_measured`` [episodes], split into
    ``not_recorded`` (no camera statistics at all) and ``no_usable_frames`` (a camera left out)."""
    name = "camera_image_outliers"
    ids = [r["episode_id"] for r in rows]
    per_camera: dict[str, dict[str, Any]] = {}
    not_measured: set[str] = set()
    outliers: list[str] = []
    named: dict[str, None] = {}
    judged = 0
    for cam in cameras:
        per_camera[cam] = {}
        for metric, word, log in ((EXPOSURE_METRIC, "exposure", False), (SHARPNESS_METRIC, "sharpness", True)):
            got = {e: v for e in ids if (v := _measured(qa_metrics, e, metric, cam)) is not None}
            not_measured |= set(ids) - set(got)
            entry: dict[str, Any] = {"measured": len(got), "median": None, "outliers": {}}
            per_camera[cam][word] = entry
            if len(got) < th.min_episodes_for_outliers:
                continue
            judged += 1
            vals = np.asarray(list(got.values()))
            z, _, _, _ = modified_z(np.log1p(np.maximum(vals, 0.0)) if log else vals, th.mad_floor_fraction)
            med = float(np.median(vals))
            entry["median"] = _g(med)
            for i in np.flatnonzero(np.abs(z) > th.max_modified_z):
                e = list(got)[i]
                entry["outliers"][e] = {"value": _g(float(vals[i])), "modified_z": _g(float(z[i]))}
                way = ("brighter" if z[i] > 0 else "darker") if word == "exposure" else (
                    "sharper" if z[i] > 0 else "blurrier")
                outliers.append(f"{cam} {e}: {word} {vals[i]:.4g} vs median {med:.4g} (M {z[i]:+.1f}, {way})")
                named[e] = None
    nm = sorted(not_measured)
    # older conversions recorded no camera statistics at all; a newer one leaves a camera out when
    # none of its frames was usable (every frame black or saturated: the episode checks judge those)
    older = [e for e in nm if not any(m in (qa_metrics.get(e) or {}) for m in (EXPOSURE_METRIC, SHARPNESS_METRIC))]
    unusable = [e for e in nm if e not in older]
    values = {"per_camera": per_camera, "not_measured": nm, "not_recorded": older, "no_usable_frames": unusable}
    unmeasured = "".join([
        f"; {len(nm)} of {len(ids)} episode(s) not measured" if nm else "",
        f" — converted before camera image statistics were recorded: {_eps(older)}" if older else "",
        f" — a camera without any usable (not black, not saturated) frame: {_eps(unusable)}" if unusable else ""])
    if outliers:
        return ReleaseCheck(name, "failed", f"{len(outliers)} camera image outlier(s) (|M| > {th.max_modified_z:g} vs "
                                            f"the same camera's median) — {'; '.join(outliers)}{unmeasured}",
                            episodes=tuple(named) + tuple(e for e in nm if e not in named), values=values)
    if not judged:
        why = ("no episode has camera image statistics" if len(nm) == len(ids) else
               f"fewer than {th.min_episodes_for_outliers} measured episodes per camera")
        return ReleaseCheck(name, "not_judged", why + unmeasured, episodes=tuple(nm), values=values)
    return ReleaseCheck(name, "passed", f"no exposure or sharpness outlier (|M| ≤ {th.max_modified_z:g}) on "
                                        f"{', '.join(cameras)}{unmeasured}", episodes=tuple(nm), values=values)


def run_release_checks(rows: Sequence[Mapping[str, Any]], *, stats: Mapping[str, Any] | None,
                       feature_names: Mapping[str, Sequence[str]], previous: PreviousVersion | None,
                       qa_metrics: Mapping[str, Mapping[str, Any]], cameras: Sequence[str],
                       thresholds: ReleaseQAThresholds) -> ReleaseQA:
    """Every release check of one release version.

    Args:
        rows: the release's episode rows (``meta/hvla_episodes.parquet``: ``episode_id``, ``task``,
            ``split`` "train"/"heldout", ``num_frames``), in ``episode_index`` order.
        stats: this version's ``meta/stats.json`` (train split; ``None`` when it has none).
        feature_names: feature → dimension names (``meta/info.json`` ``names``).
        previous: the previous version of the release line, or ``None``.
        qa_metrics: episode id → its conversion's ``qa_metrics`` (episodes missing: not measured).
        cameras: the release's cameras (names, without ``observation.images.``).
        thresholds: :class:`ReleaseQAThresholds`.

    Returns:
        :class:`ReleaseQA` with one finding per :data:`RELEASE_CHECKS` name.
    """
    checks = (
        episode_length_outliers(rows, thresholds),
        constant_features(stats, feature_names, thresholds),
        distribution_drift(stats, feature_names, previous, thresholds),
        task_coverage(rows, thresholds),
        action_chunk_fit(rows, thresholds),
        camera_image_outliers(rows, qa_metrics, cameras, thresholds),
    )
    assert tuple(c.check for c in checks) == RELEASE_CHECKS
    return ReleaseQA(thresholds=thresholds, previous_release=previous.release if previous else None, checks=checks)
