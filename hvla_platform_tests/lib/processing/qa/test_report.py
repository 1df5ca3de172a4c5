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


def test_plots_keep_one_size_whatever_the_episode_count(tmp_path: Path) -> None:
    sizes = [_plot_sizes(tmp_path, n) for n in (5, PER_EPISODE_PLOT_LIMIT, PER_EPISODE_PLOT_LIMIT + 1,
                                                 10 * PER_EPISODE_PLOT_LIMIT)]
    # bars per episode up to the limit, histograms above: the same figure size for 5 or 400 episodes
    # (tight bounding boxes: tick labels move the edges by a few percent)
    ref = sizes[0]
    for s in sizes[1:]:
        assert all(abs(a[0] - r[0]) <= 0.1 * r[0] and abs(a[1] - r[1]) <= 0.25 * r[1] for a, r in zip(s, ref)), sizes
