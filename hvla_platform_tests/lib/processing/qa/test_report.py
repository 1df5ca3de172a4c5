"""The partition QA report stays the same size however many episodes the partition holds."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

from PIL import Image

from hvla_platform.lib.processing.qa.report import PER_EPISODE_PLOT_LIMIT, write_qa_report


def _rows(n: int) -> list[dict]:
    return [{"episode_id": f"ep-{i:04d}", "status": "converted", "quality_score": (i % 10) / 10,
             "quality_components": {"completeness": 1.0, "camera_quality": 0.9, "signal_quality": (i % 7) / 7,
                                    "tracking_quality": 0.8},
             "qa_checks": {"no_nan": {"passed": i % 3 != 0, "detail": "x"}}} for i in range(n)]


def _plot_sizes(tmp: Path, n: int) -> list[tuple[int, int]]:
    out = tmp / str(n)
    out.mkdir()
    page = write_qa_report(out, partition="2026-11-20|r-001", conversions=_rows(n), skipped=[], thresholds={},
                           thumbnails={}).read_text()
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pngs) == 2
    assert page.count("<tr><td>ep-") == n  # every episode still has its row in the table
    return [Image.open(io.BytesIO(base64.b64decode(p))).size for p in pngs]


def test_plots_are_per_episode_up_to_the_limit_then_fixed_size_histograms(tmp_path: Path) -> None:
    small = _plot_sizes(tmp_path, 5)
    at_limit = _plot_sizes(tmp_path, PER_EPISODE_PLOT_LIMIT)
    assert at_limit[0][0] > small[0][0]  # one bar per episode: wider with more episodes
    above = _plot_sizes(tmp_path, PER_EPISODE_PLOT_LIMIT + 1)
    many = _plot_sizes(tmp_path, 10 * PER_EPISODE_PLOT_LIMIT)
    # histograms: the same figure for 41 or 400 episodes (only the count axis' labels widen a little)
    assert all(abs(a[0] - m[0]) <= 0.05 * a[0] and a[1] == m[1] for a, m in zip(above, many))
    assert many[0][0] < at_limit[0][0]
