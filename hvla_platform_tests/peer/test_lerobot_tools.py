"""Stock LeRobot 0.4.4 and its own command-line tools, in the project's venv, on a release we wrote.

Users run LeRobot's tools on our datasets in our venv, so each check here runs in a fresh
interpreter of the venv (a subprocess of ``sys.executable`` or a console script next to it) that
never imports ``hvla_platform``: nothing of ours, in particular the torchvision op-schema shim in
``hvla_platform.lib.core.compat``, runs before LeRobot. That only works because the venv holds a
matching torch/torchvision/torchcodec set (requirements/torch.txt) and what LeRobot's tools need
(requirements/lerobot.txt); docs/environment.md says why those versions.

The release is built by our writer (``build_lerobot_dataset``, as the ``lerobot_dataset`` asset
does) into ``$HF_LEROBOT_HOME/hvla/t-tools``, the layout LeRobot's tools look in without ``--root``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import pytest

from hvla_platform.lib.dataset import lerobot_release as lr
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.formats.episode_h5 import read_episode_h5
from hvla_platform_tests.lib.episode_factory import write_episodes

VENV_BIN = Path(sys.executable).parent
REPO_ID = "hvla/t-tools"
NUM_EPISODES, NUM_FRAMES = 2, 16

#: LeRobot's console scripts checked with ``--help`` (names from lerobot 0.4.4's entry points).
CONSOLE_SCRIPTS = ["lerobot-dataset-viz", "lerobot-edit-dataset", "lerobot-train"]


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``argv`` to completion; fail the test with its output if it exits non-zero."""
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(argv)} exited {proc.returncode}\n--- stdout\n"
                                  f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def _fresh_python(code: str, env: dict[str, str], cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter of the venv; it must print one JSON object last."""
    out = _run([sys.executable, "-c", code], env, cwd).stdout.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture(scope="module")
def lerobot_home(tmp_path_factory) -> Path:
    """``HF_LEROBOT_HOME`` holding one release written by our pipeline's LeRobot writer."""
    tmp = tmp_path_factory.mktemp("lerobot_tools")
    h5 = write_episodes(tmp / "h5", NUM_EPISODES, num_frames=NUM_FRAMES)
    spec = ReleaseSpec.from_mapping({"name": "t-tools", "repo_id": REPO_ID, "fps": 20})
    home = tmp / "home"
    res = lr.build_lerobot_dataset(spec, h5, home / REPO_ID)
    assert (res.num_episodes, res.num_frames) == (NUM_EPISODES, NUM_EPISODES * NUM_FRAMES)
    return home


@pytest.fixture(scope="module")
def tool_env(lerobot_home: Path) -> dict[str, str]:
    """The environment LeRobot's tools run in: our release's home, no hub access, Hugging Face
    caches (``datasets`` writes one when LeRobot loads Parquet) under the test's directory."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(HF_LEROBOT_HOME=str(lerobot_home), HF_HOME=str(lerobot_home.parent / "hf_home"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


@pytest.fixture(scope="module")
def stock_session(lerobot_home: Path, tool_env: dict[str, str], tmp_path_factory) -> dict:
    """``lerobot-edit-dataset`` deletes episode 0 of our release into ``<repo_id>-cut``; then ONE fresh
    interpreter of the venv (starting one costs seconds: torch, datasets, LeRobot) imports stock
    LeRobot first thing, runs torchvision's compiled ``nms``, loads our release (saving the decoded
    frame ``NUM_FRAMES + 5`` as ``frame.npy`` in the returned ``dir``) and loads the cut dataset.
    Returns its JSON (``import``, ``release``, ``cut`` sections) and ``dir``."""
    cwd = tmp_path_factory.mktemp("stock_session")
    _run([str(VENV_BIN / "lerobot-edit-dataset"), "--repo_id", REPO_ID, "--new_repo_id", f"{REPO_ID}-cut",
          "--operation.type", "delete_episodes", "--operation.episode_indices", "[0]"], tool_env, cwd)
    got = _fresh_python(
        "import json, sys\n"
        "from lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
        "import numpy as np\n"
        "import torch, torchvision, torchcodec, cv2\n"
        "keep = torchvision.ops.nms(torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.], [2., 2., 3., 3.]]),\n"
        "                           torch.tensor([0.9, 0.8, 0.7]), 0.5)\n"
        "imported = {'ours_loaded': sorted(m for m in sys.modules if m.startswith('hvla_platform')),\n"
        "            'torch': torch.__version__, 'torchvision': torchvision.__version__, 'nms': keep.tolist()}\n"
        f"ds = LeRobotDataset({REPO_ID!r})\n"
        f"item = ds[{NUM_FRAMES} + 5]\n"
        "np.save('frame.npy', item['observation.images.head'].permute(1, 2, 0).numpy())\n"
        "release = {'backend': ds.video_backend, 'episodes': ds.num_episodes, 'frames': ds.num_frames,\n"
        "           'episode_index': int(item['episode_index']), 'frame_index': int(item['frame_index']),\n"
        "           'task': item['task'], 'state': list(item['observation.state'].shape),\n"
        "           'action': list(item['action'].shape)}\n"
        f"cut = LeRobotDataset({REPO_ID + '-cut'!r})\n"
        "item = cut[3]\n"
        "print(json.dumps({'import': imported, 'release': release,\n"
        "                  'cut': {'episodes': cut.num_episodes, 'frames': cut.num_frames,\n"
        "                          'image': list(item['observation.images.head'].shape),\n"
        "                          'frame_index': int(item['frame_index'])},\n"
        "                  'ours_loaded': [m for m in sys.modules if m.startswith('hvla_platform')]}))\n",
        tool_env, cwd)
    return {**got, "dir": cwd}


def test_stock_lerobot_imports_in_a_fresh_interpreter(stock_session: dict) -> None:
    """``from lerobot.datasets.lerobot_dataset import LeRobotDataset`` works in a bare interpreter
    (the first statement of :func:`stock_session`'s process), and torchvision's compiled ops are
    really there (with the op-schema shim ``nms`` would raise)."""
    got = stock_session["import"]
    assert got["ours_loaded"] == []
    assert got["nms"] == [0, 2]
    assert got["torch"].split("+")[0] == "2.14.1" and got["torchvision"].split("+")[0] == "0.29.1", got


def test_lerobot_imports_after_mujoco_rendered_with_osmesa(tmp_path: Path) -> None:
    """One process that renders the simulator offscreen (OSMesa loads Debian's libLLVM) and then
    imports LeRobot (torchvision → ``torch._dynamo``, which imports triton when installed): with
    torch's triton present its own LLVM segfaults the process, which is why scripts/install.sh
    removes it. Our evaluation and e2e runs do exactly this in one process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MUJOCO_GL"] = "osmesa"
    got = _fresh_python(
        "import json\n"
        "import mujoco\n"
        "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos=\"0 0 3\"/>'\n"
        "                                   '<geom size=\".5\" rgba=\"1 0 0 1\"/></worldbody></mujoco>')\n"
        "d = mujoco.MjData(m); mujoco.mj_forward(m, d)\n"
        "r = mujoco.Renderer(m, 32, 32); r.update_scene(d); before = float(r.render().mean())\n"
        "from lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
        "import torch._dynamo\n"
        "r.update_scene(d); after = float(r.render().mean()); r.close()\n"
        "print(json.dumps({'before': before, 'after': after}))\n", env, tmp_path)
    assert got["before"] > 0 and got["after"] == got["before"], got


@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_lerobot_console_script_starts(script: str, tmp_path: Path) -> None:
    """Each of LeRobot's own tools (an entry point of the installed lerobot) prints its help."""
    entry_points = {ep.name for ep in distribution("lerobot").entry_points if ep.group == "console_scripts"}
    assert script in entry_points, f"{script} is not a console script of lerobot: {sorted(entry_points)}"
    exe = VENV_BIN / script
    assert exe.is_file(), f"{exe} is missing: run ./scripts/install.sh"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = _run([str(exe), "--help"], env, tmp_path).stdout
    assert "usage" in out.lower(), out[-2000:]


def test_stock_lerobot_reads_our_release(lerobot_home: Path, stock_session: dict) -> None:
    """Stock ``LeRobotDataset(repo_id)`` with LeRobot's defaults (its video backend choice included)
    loads the release and decodes the frame our source episode holds."""
    got = stock_session["release"]
    assert stock_session["ours_loaded"] == []
    assert got["backend"] == "torchcodec"
    assert (got["episodes"], got["frames"]) == (NUM_EPISODES, NUM_EPISODES * NUM_FRAMES)
    assert (got["episode_index"], got["frame_index"]) == (1, 5)
    assert got["state"] == [17] and got["action"] == [14]
    src = read_episode_h5(sorted((lerobot_home.parent / "h5").glob("ep-001*.h5"))[0])
    assert got["task"] == src.task
    decoded = np.load(stock_session["dir"] / "frame.npy") * 255.0
    # lossy H.264: a loose bound, but a wrong frame or garbage decode is far off
    assert np.abs(decoded - src.images["head"][5].astype(np.float32)).mean() < 12.0


def test_lerobot_dataset_viz_on_our_release(tool_env: dict[str, str], tmp_path: Path) -> None:
    """``lerobot-dataset-viz`` logs one episode (every frame, camera and joint) to a Rerun
    recording file, the non-interactive mode (``--save 1``) of LeRobot's visualiser."""
    out = tmp_path / "rrd"
    _run([str(VENV_BIN / "lerobot-dataset-viz"), "--repo-id", REPO_ID, "--episode-index", "1",
          "--save", "1", "--output-dir", str(out), "--num-workers", "0"], tool_env, tmp_path)
    rrd = out / f"{REPO_ID.replace('/', '_')}_episode_1.rrd"
    assert rrd.is_file(), sorted(p.name for p in out.iterdir()) if out.exists() else "no output dir"
    assert rrd.read_bytes()[:3] == b"RRF" and rrd.stat().st_size > 10_000


def test_lerobot_edit_dataset_on_our_release(stock_session: dict, lerobot_home: Path) -> None:
    """``lerobot-edit-dataset`` deletes an episode of our release into a new dataset
    (:func:`stock_session`), which stock LeRobot then loads and decodes."""
    assert (lerobot_home / f"{REPO_ID}-cut" / "meta" / "info.json").is_file()
    assert stock_session["cut"] == {"episodes": 1, "frames": NUM_FRAMES, "image": [3, 48, 64], "frame_index": 3}
