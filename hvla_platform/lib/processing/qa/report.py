"""Per-partition QA report: an HTML page with per-episode metrics, check verdicts, plots and
thumbnails of flagged frames, plus ``qa_metrics.json``. Written into the ``episodes_hdf5``
partition artifact so it travels with the data it judges."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hvla_platform.lib.processing.qa.metrics import ALL_QA_CHECKS
from hvla_platform.lib.processing.qa.thresholds import DEFAULT_MIN_QUALITY

THUMB_DIR = "qa"


def thumbnail_frames(checks: dict[str, dict[str, Any]], *, per_check: int = 2) -> list[int]:
    """The synchronised frames :func:`save_thumbnails` shows: the first ``per_check`` flagged
    frames of each failing check (sorted, distinct)."""
    return sorted({int(f) for c in checks.values() if not c["passed"] and c.get("frames")
                   for f in c["frames"][:per_check]})


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """A frame as 8-bit pixels: colour (H, W, 3) and grey (H, W) uint8 as they are; depth (H, W)
    uint16 mm scaled so its farthest reading is white (0 = no reading stays black)."""
    if frame.dtype == np.uint8:
        return frame
    top = float(frame.max()) if frame.size else 0.0
    return (frame.astype(np.float64) * (255.0 / top) if top > 0 else np.zeros(frame.shape)).astype(np.uint8)


def save_thumbnails(out_dir: Path, episode_id: str, checks: dict[str, dict[str, Any]],
                    images: Mapping[str, np.ndarray | Mapping[int, np.ndarray]], *,
                    per_check: int = 2) -> list[dict[str, Any]]:
    """Save PNG thumbnails of the first flagged frames of each failing check.

    ``images`` maps a camera to its synchronised frames: a (T, H, W, 3) uint8 array, or a mapping
    frame index → frame (at least the :func:`thumbnail_frames`; (H, W, 3) or (H, W) uint8, depth
    (H, W) uint16 mm, shown scaled). Files go to ``out_dir/qa/<episode_id>/<check>_f<frame>_<camera>.png``;
    returns ``[{"check", "frame", "camera", "path"}]`` with paths relative to ``out_dir``.
    """
    from PIL import Image

    out: list[dict[str, Any]] = []
    for name, c in checks.items():
        if c["passed"] or not c.get("frames"):
            continue
        for f in c["frames"][:per_check]:
            for cam, arr in images.items():
                if isinstance(arr, np.ndarray):
                    frame = arr[f] if 0 <= f < len(arr) else None
                else:
                    frame = arr.get(int(f))
                if frame is None:
                    continue
                rel = f"{THUMB_DIR}/{episode_id}/{name}_f{f:05d}_{cam}.png"
                (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_thumbnail(frame)).save(out_dir / rel)
                out.append({"check": name, "frame": int(f), "camera": cam, "path": rel})
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


#: Up to this many episodes the report plots one bar per episode; above it, summaries (histograms).
#: Every figure has the same size whatever the episode count, so the report's cost stays flat as a
#: partition grows (incremental conversion, issue 18) and the plot stays readable.
PER_EPISODE_PLOT_LIMIT = 40


def _plots(rows: Sequence[dict[str, Any]], min_quality: float) -> list[str]:
    """Two base64 PNG plots (9 × 3 in each): the quality score and its components, per episode (bars)
    for at most :data:`PER_EPISODE_PLOT_LIMIT` episodes, else as histograms over 20 bins of [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [r["episode_id"] for r in rows]
    scores = [r.get("quality_score") or 0.0 for r in rows]
    comps = ("completeness", "camera_quality", "signal_quality", "tracking_quality")
    if len(ids) > PER_EPISODE_PLOT_LIMIT:
        bins = np.linspace(0.0, 1.0, 21)
        fig, ax = plt.subplots(figsize=(9, 3))
        sc = np.asarray(scores, dtype=np.float64)
        ax.hist([sc[sc >= min_quality], sc[sc < min_quality]], bins=bins, stacked=True,
                color=["tab:green", "tab:red"], label=["at or above threshold", "below threshold"])
        ax.axvline(min_quality, color="k", ls="--", lw=1, label=f"default release threshold {min_quality}")
        ax.set_xlabel("quality score")
        ax.set_ylabel("episodes")
        ax.set_title(f"quality score of {len(ids)} episodes", fontsize=9)
        ax.legend(fontsize=7)
        plots = [_png(fig)]
        fig, ax = plt.subplots(figsize=(9, 3))
        for c in comps:
            ax.hist([r.get("quality_components", {}).get(c, 0.0) for r in rows], bins=bins, histtype="step", label=c)
        ax.set_xlabel("component score")
        ax.set_ylabel("episodes")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("score components", fontsize=9)
        plots.append(_png(fig))
        return plots
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.bar(range(len(ids)), scores, color=["tab:green" if s >= min_quality else "tab:red" for s in scores])
    ax.axhline(min_quality, color="k", ls="--", lw=1, label=f"default release threshold {min_quality}")
    ax.set_xticks(range(len(ids)), ids, rotation=45, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("quality score")
    ax.legend(fontsize=7)
    plots = [_png(fig)]
    fig, ax = plt.subplots(figsize=(9, 3))
    w = 0.2
    for k, c in enumerate(comps):
        ax.bar(np.arange(len(ids)) + (k - 1.5) * w, [r.get("quality_components", {}).get(c, 0.0) for r in rows], w, label=c)
    ax.set_xticks(range(len(ids)), ids, rotation=45, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("score components", fontsize=9)
    plots.append(_png(fig))
    return plots


def _camera_stats(m: dict[str, Any]) -> str:
    """One HTML paragraph of per-camera image statistics (median level, median sharpness, exposure-shifted
    and blurred frames) from an episode's QA metrics; ``""`` when it has none."""
    lv, sh = m.get("camera_exposure", {}), m.get("camera_sharpness", {})
    if not lv:
        return ""
    shifted, blurred = m.get("camera_exposure_shift_frames", {}), m.get("camera_blur_frames", {})
    parts = [f"{html.escape(c)}: level {lv[c]:.1f}, sharpness {sh.get(c, float('nan')):.1f} "
             f"({shifted.get(c, 0)} shifted, {blurred.get(c, 0)} blurred frame(s))" for c in lv]
    return "<p>Camera images (median mean level 0–255, median variance of the Laplacian): " + "; ".join(parts) + "</p>"


def write_qa_report(out_dir: Path, *, partition: str, conversions: Sequence[dict[str, Any]],
                    skipped: Sequence[dict[str, Any]], thresholds: dict[str, Any],
                    thumbnails: dict[str, list[dict[str, Any]]], decisions: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``qa_report.html`` and ``qa_metrics.json`` into ``out_dir``; return the HTML path.

    Args:
        conversions: per-episode conversion records (``EpisodeConversion`` as dicts).
        skipped: episodes not converted at all (raw checks failed), with reasons.
        thresholds: the QA thresholds used.
        thumbnails: episode id → :func:`save_thumbnails` output.
        decisions: episode id → the supervisor's latest decision, if any.
    """
    decisions = decisions or {}
    rows = list(conversions)
    min_q = DEFAULT_MIN_QUALITY
    metrics = {
        "partition": partition, "thresholds": thresholds,
        "episodes": {r["episode_id"]: {"status": r["status"], "quality_score": r.get("quality_score"),
                                       "quality_components": r.get("quality_components"),
                                       "failed_checks": [k for k, c in r.get("qa_checks", {}).items() if not c["passed"]],
                                       "metrics": r.get("qa_metrics", {})} for r in rows},
        "skipped": list(skipped),
    }
    (out_dir / "qa_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    e = html.escape
    head = "".join(f"<th title='{e(c)}'>{e(c.replace('_', ' '))}</th>" for c in ALL_QA_CHECKS)
    body = []
    for r in rows:
        qc = r.get("qa_checks", {})
        cells = "".join(
            f"<td class='{'ok' if qc.get(c, {}).get('passed') else 'bad'}' title='{e(qc.get(c, {}).get('detail', 'n/a'))}'>"
            f"{'✓' if qc.get(c, {}).get('passed') else ('✗' if c in qc else '–')}</td>" for c in ALL_QA_CHECKS)
        s = r.get("quality_score")
        dec = decisions.get(r["episode_id"])
        body.append(f"<tr><td>{e(r['episode_id'])}</td><td>{e(r['status'])}</td>"
                    f"<td class='{'ok' if (s or 0) >= min_q else 'bad'}'>{'' if s is None else f'{s:.3f}'}</td>"
                    f"<td>{e(dec['decision'] + ' by ' + dec['by'] + ': ' + dec['reason']) if dec else ''}</td>{cells}</tr>")
    details = []
    for r in rows:
        items = "".join(f"<li><b>{e(k)}</b>: {'ok' if c['passed'] else 'FAIL'} — {e(c['detail'])}</li>"
                        for k, c in r.get("qa_checks", {}).items())
        thumbs = "".join(f"<figure><img src='{e(t['path'])}' width='128'><figcaption>{e(t['check'])} · frame "
                         f"{t['frame']} · {e(t['camera'])}</figcaption></figure>" for t in thumbnails.get(r["episode_id"], []))
        m = r.get("qa_metrics", {})
        # a metric read back from a manifest is null where it was undefined (NaN has no JSON form)
        num = {k: float("nan") if m.get(k) is None else m[k] for k in ("rms_jerk", "ldlj", "tracking_error_median_rad")}
        extra = (f"<p>RMS jerk {num['rms_jerk']:.1f} rad/s³, LDLJ {num['ldlj']:.2f}, "
                 f"tracking error median {num['tracking_error_median_rad']:.4f} rad</p>") if m else ""
        extra += _camera_stats(m)
        score_txt = "" if r.get("quality_score") is None else f" — score {r['quality_score']:.3f}"
        details.append(f"<h3>{e(r['episode_id'])} — {e(r['status'])}{score_txt}</h3>"
                       f"{('<p>' + e(r['reason']) + '</p>') if r.get('reason') else ''}{extra}<ul>{items}</ul>"
                       f"<div class='thumbs'>{thumbs}</div>")
    skipped_html = "".join(f"<li>{e(s['episode_id'])}: {e('; '.join(s['reasons']))}</li>" for s in skipped) or "<li>none</li>"
    plots = "".join(f"<img src='data:image/png;base64,{p}'>" for p in (_plots(rows, min_q) if rows else []))
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>QA {e(partition)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1200px}} td,th{{border:1px solid #ccc;padding:2px 5px;font-size:12px}}
table{{border-collapse:collapse}} .ok{{background:#e6f4e6}} .bad{{background:#fbe3e3}} .thumbs figure{{display:inline-block;margin:4px}}
figcaption{{font-size:10px}}</style></head><body>
<h1>QA report — partition {e(partition)}</h1>
<p>Episodes with a quality score below their release's <code>min_quality</code> (default {min_q}) or a failed gate are
left out of releases unless a supervisor approves them (<code>hvla qa approve EPISODE --reason …</code>); see docs/qa.md for every check, threshold and the score formula.</p>
{plots}
<h2>Checks per episode</h2><table><tr><th>episode</th><th>status</th><th>score</th><th>decision</th>{head}</tr>{''.join(body)}</table>
<h2>Not converted (failed raw checks)</h2><ul>{skipped_html}</ul>
<h2>Details</h2>{''.join(details)}
<h2>Thresholds</h2><pre>{e(json.dumps(thresholds, indent=2))}</pre>
</body></html>"""
    path = out_dir / "qa_report.html"
    path.write_text(page, encoding="utf-8")
    return path
