"""HTML of the episode review page and the release review queue (issue 13 §4; data:
:mod:`hvla_platform.lib.web.review`).

**The episode page.** Every colour camera is an HTML5 ``<video>`` of the episode's H.264 MP4; one
timeline drives them all: a play/pause button and one scrub bar (``<input type=range>``, step one
frame) set every video's ``currentTime`` together, the first video is the clock while playing and
the others are pulled back when they drift more than 0.12 s. Under the videos, joint state and
commanded action are Plotly line charts (one trace per joint, x = seconds from the first frame)
with a red cursor line at the current time; clicking a chart seeks there. Every failed check's
spans are shaded on the charts and marked on the timeline; clicking a mark or a span in the
findings table seeks to its start. ``?t=<seconds>`` opens the page at that time (the check
metadata links carry it). Below: the findings table, the decision history and the approve /
reject form (a reason is required; the reviewer is the request's identity, shown, never typed),
the episode's rights and provenance.

**Why Plotly + HTML5 video, not rerun's web viewer.** rerun-sdk 0.26.2 is in the venv (LeRobot's
``lerobot-dataset-viz`` uses it) and its viewer syncs video and plots out of the box, but serving it
means running rerun's own web-viewer server and a gRPC server per recording beside this service
(``rr.serve_grpc`` + ``rr.serve_web_viewer``; the viewer is WebAssembly embedded in the SDK's
107 MB native module), converting each episode into a recording whose format must match the
viewer's version, and a WebGL/WebGPU canvas that headless Chromium with ``--disable-gpu`` (our
browser tests) renders only in software; and its UI has no place for a reviewer's decision form
or the rights block. Plotly (pinned in requirements/runtime.txt) is a well-kept plotting library
whose JS bundle ships inside the pip package (:func:`plotly_js`, served by this service itself, so
the page works without internet), and HTML5 video of an H.264 MP4 is what every browser plays
natively, with seeking over HTTP Range. The synchronisation left to write is small: one clock,
``currentTime`` on every video, one ``relayout`` of the cursor shape.

**The queue page** lists every episode of a release version with whether it is in the release
(selected / approved / excluded, with the reason), its quality score, QA state and latest
decision, each linking to its review page; a filter box (any text of the row) and two selects
(decision, in-release) filter the rows in the browser.
"""

from __future__ import annotations

import functools
import html
import json
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

import numpy as np

def episode_path(day: str, robot: str, episode_id: str) -> str:
    """Path of an episode's review page (:func:`hvla_platform.lib.web.links.episode_review_url`
    without the base URL)."""
    return f"/review/partitions/{quote(day)}/{quote(robot)}/episodes/{quote(episode_id)}"



def review_json(review: Any, *, digits: int = 5) -> dict[str, Any]:
    """The page's data (a :class:`hvla_platform.lib.web.review.EpisodeReview`) as JSON-ready values: arrays rounded to ``digits`` decimals (radians: 1e-5 rad
    is far below any joint's resolution), non-finite values as ``None`` (JSON ``null``)."""

    def arr(a: np.ndarray) -> list[Any]:
        r = np.round(np.asarray(a, dtype=np.float64), digits)
        if np.isfinite(r).all():
            return r.tolist()
        return np.where(np.isfinite(r), r, None).tolist()

    return {
        "day": review.day, "robot": review.robot, "episode_id": review.episode_id, "task": review.task,
        "fps": review.fps, "duration_s": review.duration_s, "timestamps": arr(review.timestamps),
        "state": arr(review.state), "state_names": review.state_names,
        "action": arr(review.action), "action_names": review.action_names,
        "cameras": [asdict(c) for c in review.cameras], "video_version": review.video_version,
        "findings": [asdict(f) for f in review.findings], "quality_score": review.quality_score,
        "rights": review.rights, "withdrawn": review.withdrawn, "provenance": review.provenance,
        "decisions": review.decisions,
    }


#: Where the service serves Plotly's JS (the pip package's own bundle; no CDN).
PLOTLY_JS_PATH = "/review/static/plotly.min.js"


@functools.lru_cache(maxsize=1)
def plotly_js() -> tuple[bytes, str]:
    """(Plotly's minified JS bundle, plotly's version), from the installed ``plotly`` package
    (``plotly.offline.get_plotlyjs()``), read once per process."""
    import plotly
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode(), plotly.__version__


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json_script(element_id: str, data: Any) -> str:
    """``data`` as a JSON ``<script>`` block (every ``<`` escaped, so no text in it can close the tag)."""
    body = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{body}</script>'


def _fmt_score(score: float | None) -> str:
    return "—" if score is None else f"{score:.3f}"


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header,section{background:#fff;margin:10px 14px;padding:10px 14px;border:1px solid #d9dde3;border-radius:6px}
h1{font-size:18px;margin:0 0 4px} h2{font-size:15px;margin:0 0 8px}
.muted{color:#667} .bad{color:#b3261e;font-weight:600} .good{color:#1b7f3b;font-weight:600}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;margin-right:4px;background:#e8eaee}
.badge.bad{background:#fde7e5} .badge.good{background:#e3f4e8}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef1;vertical-align:top}
th{font-weight:600;background:#fafbfc}
#videos{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0} figcaption{font-size:12px;color:#556}
video{background:#000;width:360px;max-width:100%;display:block}
#controls{display:flex;align-items:center;gap:10px;margin-top:8px}
#timeline{position:relative;flex:1;height:34px}
#scrub{position:absolute;left:0;right:0;top:0;width:100%;margin:0}
#marks{position:absolute;left:0;right:0;top:20px;height:12px;background:#eef0f3;border-radius:3px}
.mark{position:absolute;top:0;height:12px;min-width:4px;background:#d93025;opacity:.75;border-radius:2px;cursor:pointer}
.mark.active{outline:2px solid #000}
.seek{cursor:pointer;color:#0b57d0;text-decoration:underline;background:none;border:0;padding:0;font:inherit}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0} dt{color:#556} dd{margin:0;word-break:break-all}
#decide textarea{width:100%;min-height:48px;font:inherit}
#decide button{font:inherit;padding:4px 14px;margin-right:6px}
#decision-status.error{color:#b3261e} #decision-status.ok{color:#1b7f3b}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:0}
.filters{display:flex;gap:10px;margin-bottom:8px} .filters input{flex:1;font:inherit;padding:3px 6px}
"""


def _marks(review: Any) -> str:
    dur = review.duration_s or 1.0
    out = []
    for f in review.failed:
        for s in f.spans:
            left = 100.0 * max(0.0, min(s.start_s, dur)) / dur
            width = 100.0 * max(0.0, min(s.end_s, dur) - max(0.0, s.start_s)) / dur
            label = f"{f.check}: {s.start_s:.2f}–{s.end_s:.2f} s" + (f" ({s.subject})" if s.subject else "")
            out.append(f'<a class="mark" data-check="{_e(f.check)}" data-t="{s.start_s:.3f}" data-end="{s.end_s:.3f}" '
                       f'style="left:{left:.3f}%;width:{width:.3f}%" title="{_e(label)}" aria-label="{_e(label)}"></a>')
    return "".join(out)


def _findings_table(review: Any) -> str:
    rows = []
    for f in review.findings:
        spans = " ".join(
            f'<button type="button" class="seek" data-t="{s.start_s:.3f}">{s.start_s:.2f}–{s.end_s:.2f} s'
            + (f" {_e(s.subject)}" if s.subject else "") + "</button>" for s in f.spans) or '<span class="muted">—</span>'
        result = '<span class="good">passed</span>' if f.passed else '<span class="bad">failed</span>'
        rows.append(f'<tr class="finding {"passed" if f.passed else "failed"}" data-check="{_e(f.check)}">'
                    f"<td>{_e(f.check)} <span class='muted'>({_e(f.severity)})</span></td><td>{result}</td>"
                    f"<td>{spans}</td><td>{_e(f.detail)}</td></tr>")
    n_failed = len(review.failed)
    return (f'<section id="findings"><h2>QA findings — {n_failed} failed of {len(review.findings)}</h2>'
            "<table><thead><tr><th>check</th><th>result</th><th>at</th><th>detail</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def _history_rows(decisions: list[dict[str, Any]]) -> str:
    return "".join(f"<tr><td>{_e(d['at'])}</td><td>{_e(d['decision'])}</td><td>{_e(d['by'])}</td>"
                   f"<td>{_e(d['reason'])}</td></tr>" for d in decisions)


def _decision_section(review: Any, reviewer: str) -> str:
    latest = review.decisions[-1] if review.decisions else None
    now = (f"latest: <b>{_e(latest['decision'])}</b> by {_e(latest['by'])}" if latest
           else '<span class="muted">no decision yet</span>')
    if reviewer:
        who = f'Reviewing as <b id="reviewer">{_e(reviewer)}</b>.'
        disabled = ""
    else:
        who = ('<span class="bad" id="reviewer-missing">No reviewer identity for this request: '
               "decisions are refused (open the page on the service's machine, or behind the proxy that "
               "names the user).</span>")
        disabled = " disabled"
    return (f'<section id="decision"><h2>Decision — <span id="latest-decision">{now}</span></h2>'
            f"<p>{who} A decision is recorded as <code>hvla qa approve|reject</code> records it; the latest one is "
            "what the next release build honours.</p>"
            f'<form id="decide" onsubmit="return false"><label for="reason">Reason</label>'
            f'<textarea id="reason" name="reason" required placeholder="why (required)"{disabled}></textarea>'
            f'<p><button type="button" id="approve" data-decision="approve"{disabled}>Approve</button>'
            f'<button type="button" id="reject" data-decision="reject"{disabled}>Reject</button>'
            '<output id="decision-status"></output></p></form>'
            '<table id="history"><thead><tr><th>at</th><th>decision</th><th>by</th><th>reason</th></tr></thead>'
            f"<tbody>{_history_rows(review.decisions)}</tbody></table></section>")


def _rights_section(review: Any) -> str:
    r = review.rights

    def row(label: str, value: Any) -> str:
        if isinstance(value, list):
            value = ", ".join(value) or "(none)"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        return f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>"

    rights = "".join(row(k.replace("_", " "), v) for k, v in r.items()) or "<dt>rights</dt><dd>not recorded</dd>"
    withdrawn = (f'<p class="bad" id="withdrawn">Consent withdrawn: {_e(review.withdrawn)}</p>'
                 if review.withdrawn else "")
    prov = "".join(row(k, v) for k, v in review.provenance.items())
    return (f'<div class="cols"><section id="rights"><h2>Rights</h2>{withdrawn}<dl>{rights}</dl></section>'
            f'<section id="provenance"><h2>Provenance</h2><dl>{prov}</dl></section></div>')


_EPISODE_JS = r"""
(() => {
  const data = JSON.parse(document.getElementById('episode-data').textContent);
  const start = JSON.parse(document.getElementById('page-config').textContent);
  const dur = data.duration_s, fps = data.fps || 20;
  const videos = [...document.querySelectorAll('video[data-camera]')];
  const master = videos[0] || null;
  const scrub = document.getElementById('scrub'), clock = document.getElementById('clock');
  const btn = document.getElementById('play'), status = document.getElementById('player-status');
  let playing = false, base = 0, startedAt = 0, lastCursor = -1, lastCursorAt = 0;
  const clamp = (t) => Math.max(0, Math.min(dur, Number(t) || 0));
  // the timeline's time by the wall clock since play (or where it was paused)
  const clockTime = () => playing ? clamp(base + (performance.now() - startedAt) / 1000) : base;
  const now = () => master ? master.currentTime : clockTime();
  const plots = [...document.querySelectorAll('.plot')];
  function say(msg) { status.textContent = msg; }
  function render(t, force) {
    scrub.value = t;
    clock.textContent = `${t.toFixed(2)} / ${dur.toFixed(2)} s · frame ${Math.min(Math.round(t * fps), data.timestamps.length - 1)}`;
    document.querySelectorAll('.mark').forEach((m) => m.classList.toggle('active',
      Number(m.dataset.t) <= t && t <= Math.max(Number(m.dataset.end), Number(m.dataset.t) + 1 / fps)));
    const wall = performance.now();
    if (window.Plotly && (force || (Math.abs(t - lastCursor) > 1e-6 && wall - lastCursorAt > 66))) {
      lastCursor = t; lastCursorAt = wall;
      plots.forEach((p) => { if (p.layout) Plotly.relayout(p, { 'shapes[0].x0': t, 'shapes[0].x1': t }); });
    }
  }
  function seek(t) {
    t = clamp(t); base = t; startedAt = performance.now();
    videos.forEach((v) => { v.currentTime = t; });
    render(t, true);
  }
  function tick() {
    if (!playing) return;
    const t = now();
    videos.forEach((v) => { if (v !== master && Math.abs(v.currentTime - t) > 0.12) v.currentTime = t; });
    render(t, false);
    if (t >= dur - 1e-3 || (master && master.ended)) { pause(); return; }
    requestAnimationFrame(tick);
  }
  function play() {
    if (now() >= dur - 1e-3) seek(0);
    base = now(); startedAt = performance.now(); playing = true; btn.textContent = 'Pause';
    // an AbortError is the play() a pause() interrupted (the user paused before it started): not a failure
    videos.forEach((v) => { v.play().catch((e) => { if (e.name !== 'AbortError') say(`camera ${v.dataset.camera} cannot play: ${e.message}`); }); });
    requestAnimationFrame(tick);
  }
  function pause() {
    const t = now(); playing = false; btn.textContent = 'Play';
    videos.forEach((v) => v.pause());
    seek(t);
  }
  btn.addEventListener('click', () => (playing ? pause() : play()));
  scrub.addEventListener('input', () => seek(scrub.value));
  document.addEventListener('click', (ev) => {
    const el = ev.target.closest('.mark, .seek');
    if (el) { ev.preventDefault(); seek(el.dataset.t); }
  });
  videos.forEach((v) => {
    // a video that (re)loads takes the timeline's time from the wall clock, not from the first video:
    // when that one is the video (re)loading, its currentTime has just gone back to 0
    v.addEventListener('loadedmetadata', () => { v.currentTime = clockTime(); });
    v.addEventListener('error', () => say(`camera ${v.dataset.camera}: the video did not load (${v.error && v.error.message || 'error'})`));
  });

  // plots: one trace per joint, failed findings shaded, cursor = shapes[0]
  const spans = data.findings.filter((f) => !f.passed).flatMap((f) => f.spans.map((s) => ({ check: f.check, ...s })));
  function series(rows, names) {
    return names.map((n, j) => ({ x: data.timestamps, y: rows.map((r) => r[j]), name: n, type: 'scatter',
      mode: 'lines', line: { width: 1.2 }, hovertemplate: `${n}: %{y:.4f} rad<extra>%{x:.2f} s</extra>` }));
  }
  function layout(title) {
    const shapes = [{ type: 'line', xref: 'x', yref: 'paper', x0: base, x1: base, y0: 0, y1: 1,
      line: { color: '#d93025', width: 2 } }];
    const annotations = [];
    spans.forEach((s) => {
      shapes.push({ type: 'rect', xref: 'x', yref: 'paper', x0: s.start_s, x1: Math.max(s.end_s, s.start_s + 1 / fps),
        y0: 0, y1: 1, fillcolor: 'rgba(217,48,37,0.13)', line: { width: 0 }, layer: 'below' });
      annotations.push({ x: s.start_s, y: 1, xref: 'x', yref: 'paper', text: s.check + (s.subject ? ` (${s.subject})` : ''),
        showarrow: false, xanchor: 'left', yanchor: 'bottom', font: { size: 10, color: '#b3261e' } });
    });
    return { title: { text: title, font: { size: 13 } }, height: 300, margin: { l: 50, r: 10, t: 40, b: 36 },
      xaxis: { title: { text: 'seconds from the first frame' }, range: [0, dur] }, hovermode: 'x',
      legend: { font: { size: 10 } }, shapes, annotations };
  }
  if (window.Plotly) {
    const config = { responsive: true, displaylogo: false };
    const specs = [['plot-state', data.state, data.state_names, 'Joint state (rad)'],
                   ['plot-action', data.action, data.action_names, 'Commanded action (rad)']];
    specs.forEach(([id, rows, names, title]) => {
      const el = document.getElementById(id);
      Plotly.newPlot(el, series(rows, names), layout(title), config).then(() => {
        el.on('plotly_click', (ev) => { if (ev.points && ev.points.length) seek(ev.points[0].x); });
      });
    });
  } else {
    say('Plotly did not load: the plots are missing');
  }

  // decisions
  const form = document.getElementById('decide'), out = document.getElementById('decision-status');
  form.querySelectorAll('button[data-decision]').forEach((b) => b.addEventListener('click', async () => {
    const reason = document.getElementById('reason').value.trim();
    if (!reason) { out.className = 'error'; out.textContent = 'a reason is required'; return; }
    out.className = ''; out.textContent = 'recording…';
    const resp = await fetch(start.decision_url, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ decision: b.dataset.decision, reason }) });
    if (!resp.ok) { out.className = 'error'; out.textContent = (await resp.text()).trim(); return; }
    const rec = await resp.json();
    const tr = document.createElement('tr');
    [rec.at, rec.decision, rec.by, rec.reason].forEach((v) => { const td = document.createElement('td'); td.textContent = v; tr.appendChild(td); });
    document.querySelector('#history tbody').appendChild(tr);
    document.getElementById('latest-decision').textContent = `latest: ${rec.decision} by ${rec.by}`;
    out.className = 'ok'; out.textContent = `recorded: ${rec.decision} by ${rec.by} at ${rec.at}`;
  }));

  window.hvlaReview = { seek, play, pause, now };
  seek(start.t);
})();
"""


def episode_page(review: Any, *, reviewer: str, start_s: float, base_path: str) -> str:
    """The review page of one episode (module docstring).

    Args:
        review: :class:`hvla_platform.lib.web.review.EpisodeReview`.
        reviewer: the request's identity (``""``: none, the decision buttons are disabled).
        start_s: where the timeline opens, seconds from the first frame (clamped to the episode).
        base_path: the page's path (videos and the decision POST are below it).
    """

    videos = []
    for c in review.cameras:
        if c.kind == "rgb":
            src = f"{base_path}/video/{quote(c.name)}.mp4?v={review.video_version}"
            videos.append(f'<figure><video id="video-{_e(c.name)}" data-camera="{_e(c.name)}" src="{_e(src)}" '
                          f'muted playsinline preload="auto" width="{c.width}" height="{c.height}"></video>'
                          f"<figcaption>{_e(c.name)} · {c.width}×{c.height}</figcaption></figure>")
        else:
            videos.append(f'<figure class="depth"><figcaption>{_e(c.name)}: {_e(c.kind)} camera '
                          f"{c.width}×{c.height}, not played (see the HDF5)</figcaption></figure>")
    failed = review.failed
    badges = (f'<span class="badge bad">{len(failed)} failed check(s): {_e(", ".join(f.check for f in failed))}</span>'
              if failed else '<span class="badge good">all checks passed</span>')
    if review.withdrawn:
        badges += '<span class="badge bad">withdrawn</span>'
    qa_report = f"/lake/episodes-hdf5/{quote(review.day)}/{quote(review.robot)}/qa_report.html"
    step = 1.0 / review.fps if review.fps else 0.05
    t0 = max(0.0, min(float(start_s), review.duration_s))
    config = {"t": t0, "decision_url": f"{base_path}/decision"}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Review {_e(review.episode_id)} — {_e(review.day)}/{_e(review.robot)}</title>
<style>{_STYLE}</style>
<script src="{PLOTLY_JS_PATH}"></script>
</head><body>
<header><h1>Episode <span id="episode-id">{_e(review.episode_id)}</span></h1>
<div>partition <b>{_e(review.day)}|{_e(review.robot)}</b> · task “{_e(review.task)}” ·
quality score <b id="score">{_fmt_score(review.quality_score)}</b> · {review.duration_s:.2f} s at {review.fps:g} fps ·
<a href="{_e(qa_report)}">partition QA report</a></div><div>{badges}</div></header>
<section id="player"><div id="videos">{''.join(videos) or '<p class="muted">no camera</p>'}</div>
<div id="controls"><button type="button" id="play">Play</button><span id="clock"></span>
<div id="timeline"><input type="range" id="scrub" min="0" max="{review.duration_s:.4f}" step="{step:.4f}" value="{t0:.4f}"
aria-label="timeline"><div id="marks">{_marks(review)}</div></div></div>
<div id="player-status" class="bad"></div></section>
<section id="plots"><div id="plot-state" class="plot"></div><div id="plot-action" class="plot"></div></section>
{_findings_table(review)}
{_decision_section(review, reviewer)}
{_rights_section(review)}
{_json_script("episode-data", review_json(review))}
{_json_script("page-config", config)}
<script>{_EPISODE_JS}</script>
</body></html>
"""


_QUEUE_JS = r"""
(() => {
  const text = document.getElementById('filter'), dec = document.getElementById('decision-filter');
  const inrel = document.getElementById('release-filter'), count = document.getElementById('count');
  const rows = [...document.querySelectorAll('#queue tbody tr')];
  function apply() {
    const q = text.value.trim().toLowerCase();
    let shown = 0;
    rows.forEach((r) => {
      const ok = (!q || r.textContent.toLowerCase().includes(q))
        && (dec.value === 'all' || r.dataset.decision === dec.value)
        && (inrel.value === 'all' || r.dataset.inRelease === inrel.value);
      r.hidden = !ok; shown += ok ? 1 : 0;
    });
    count.textContent = `${shown} of ${rows.length} episodes`;
  }
  [text, dec, inrel].forEach((el) => el.addEventListener('input', apply));
  apply();
})();
"""


def queue_page(queue: Any) -> str:
    """The review queue of one release version (module docstring).

    Args:
        queue: :class:`hvla_platform.lib.web.review.ReleaseQueue`.
    """

    rows = []
    for r in queue.rows:
        if r.partition:
            day, robot = r.partition.split("|", 1)
            ep = f'<a href="{_e(episode_path(day, robot, r.episode_id))}">{_e(r.episode_id)}</a>'
        else:
            ep = f'{_e(r.episode_id)} <span class="muted">(no longer in the lake)</span>'
        d = r.decision
        decision = (f"<b>{_e(d['decision'])}</b> by {_e(d['by'])} <span class='muted'>{_e(d['at'])}</span><br>{_e(d['reason'])}"
                    if d else '<span class="muted">none</span>')
        state = _e(r.state) + (f' <span class="bad">{_e(", ".join(r.failed_checks))}</span>' if r.failed_checks else "")
        cls = "bad" if r.in_release == "excluded" else "good"
        rows.append(f'<tr data-episode="{_e(r.episode_id)}" data-decision="{_e(d["decision"] if d else "none")}" '
                    f'data-in-release="{_e(r.in_release)}"><td>{ep}</td><td>{_e(r.partition or "—")}</td>'
                    f'<td><span class="{cls}">{_e(r.in_release)}</span><br><span class="muted">{_e(r.reason)}</span></td>'
                    f"<td>{_fmt_score(r.quality_score)}</td><td>{state}</td><td>{decision}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Review queue {_e(queue.release)}</title>
<style>{_STYLE}</style></head><body>
<header><h1>Review queue — release <span id="release">{_e(queue.release)}</span></h1>
<div>spec {_e(queue.spec_name)}, version {queue.version}, built {_e(queue.built_at)} · {len(queue.rows)} episodes</div></header>
<section><div class="filters">
<input id="filter" type="search" placeholder="filter: episode, partition, check, reason…" aria-label="filter">
<label>decision <select id="decision-filter"><option value="all">all</option><option value="none">none</option>
<option value="approve">approve</option><option value="reject">reject</option></select></label>
<label>in release <select id="release-filter"><option value="all">all</option><option value="selected">selected</option>
<option value="approved">approved</option><option value="excluded">excluded</option></select></label>
<span id="count" class="muted"></span></div>
<table id="queue"><thead><tr><th>episode</th><th>partition</th><th>in release</th><th>score</th><th>QA state</th>
<th>latest decision</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>
<script>{_QUEUE_JS}</script>
</body></html>
"""


def index_page(index: Any) -> str:
    """``/review/``: the releases (each linking to its queue) and the converted episodes (each
    linking to its review page; failed checks and no decision first).

    Args:
        index: :class:`hvla_platform.lib.web.review.ReviewIndex`.
    """

    rel = "".join(
        f'<li><a href="/review/releases/{quote(name)}">{_e(name)}</a> — latest version {_e(version)}, {n} episodes</li>'
        if version else f"<li>{_e(name)} <span class='muted'>(not built yet)</span></li>"
        for name, version, n in index.releases) or "<li class='muted'>no release registered</li>"
    rows = []
    for s in index.episodes:
        day, robot = s.partition.split("|", 1)
        d = s.decision
        rows.append(f'<tr><td><a href="{_e(episode_path(day, robot, s.episode_id))}">{_e(s.episode_id)}</a></td>'
                    f"<td>{_e(s.partition)}</td><td>{_fmt_score(s.quality_score)}</td>"
                    f'<td class="bad">{_e(", ".join(s.failed_checks))}</td>'
                    f"<td>{_e(d['decision'] + ' by ' + d['by']) if d else '<span class=muted>none</span>'}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Episode review</title>
<style>{_STYLE}</style></head><body>
<header><h1>Episode review</h1><div class="muted">Open an episode to see its cameras, joint plots and QA findings
on one timeline and to approve or reject it; a release's queue lists its episodes with their decisions.</div></header>
<section id="releases"><h2>Release queues</h2><ul>{rel}</ul></section>
<section id="episodes"><h2>Converted episodes ({len(index.episodes)})</h2>
<table><thead><tr><th>episode</th><th>partition</th><th>score</th><th>failed checks</th><th>latest decision</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></section>
</body></html>
"""
