"""The wheel carries resources/ and works outside the source tree."""

import os
import pathlib
import subprocess
import sys
import sysconfig
import venv

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_lists_presets(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, timeout=600)
    wheel = next(dist.glob("gdviz-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # Install the wheel itself; its heavy dependencies (torch, Qt) come from this environment.
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)],
                   check=True, timeout=600)
    deps = sysconfig.get_paths()["purelib"]
    pathlib.Path(site, "zz_test_deps.pth").write_text(deps + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import gdviz.resources as r; print(r.resources_dir())"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout
    assert where.strip().startswith(site), where
    proc = subprocess.run([str(py), "-m", "gdviz", "presets"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "rosenbrock" in proc.stdout and "seed-linear" in proc.stdout
