"""tpu_setup/*.sh as a user runs them: --dry-run prints the exact commands, flags are checked.

No network and no gcloud: a fake `gcloud` first on PATH records how it is called, so the tests
also check that --dry-run never calls it and that a real run calls exactly what it printed.
"""

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "tpu_setup"
SCRIPTS = ["create", "install", "launch", "resume", "gpu_host", "host_install", "tpu_hosts"]
TPU = ["--name", "hj-test", "--zone", "europe-west4-a", "--project", "my-proj"]
CKPT = "gs://my-bucket/hjepa/fig4"

FAKE_GCLOUD = """\
#!{python}
# Records its arguments, one JSON list a line; `describe` prints $FAKE_STATE.
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if "describe" in sys.argv and os.environ.get("FAKE_STATE"):
    print(os.environ["FAKE_STATE"])
sys.exit(int(os.environ.get("FAKE_RC", "0")))
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def env(tmp_path):
    """An environment whose `gcloud` is the fake one, logging to tmp_path / "gcloud.log"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "gcloud", FAKE_GCLOUD.format(python=sys.executable))
    e = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "HJ_"))}
    e.update(
        PATH=f"{bin_dir}{os.pathsep}{e['PATH']}",
        FAKE_LOG=str(tmp_path / "gcloud.log"),
        TMPDIR=str(tmp_path),
    )
    return e


def run(script: str, *args: str, env: dict, check: bool = True, cwd=None):
    proc = subprocess.run(
        ["bash", str(SETUP / f"{script}.sh"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def dry(script: str, *args: str, env: dict) -> list[list[str]]:
    """The commands `script --dry-run args` prints, each split as the shell would."""
    proc = run(script, "--dry-run", *args, env=env)
    assert not Path(env["FAKE_LOG"]).exists(), "--dry-run called gcloud"
    lines = [line for line in proc.stdout.splitlines() if line and not line.startswith("#")]
    return [shlex.split(line) for line in lines]


def gcloud_calls(env: dict) -> list[list[str]]:
    log = Path(env["FAKE_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def remote(cmd: list[str]) -> str:
    """The --command of a `gcloud compute tpus tpu-vm ssh` command."""
    assert cmd[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"], cmd
    return cmd[cmd.index("--command") + 1]


# ---- flags ----


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_zero(script, env):
    proc = run(script, "--help", env=env)
    assert proc.stdout.startswith("Usage: ") and "--dry-run" in proc.stdout
    assert run(script, "-h", env=env).stdout == proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_flag_is_an_error_naming_it(script, env):
    proc = run(script, "--dry-run", "--no-such-flag", "1", env=env, check=False)
    assert proc.returncode != 0
    assert "unknown flag --no-such-flag" in proc.stderr and f"{script}.sh --help" in proc.stderr


@pytest.mark.parametrize(
    "script, args, flag",
    [
        ("create", ["--zone"], "--zone"),
        ("launch", ["--zone", "--experiment", "x"], "--zone"),
        ("install", ["--repo="], "--repo"),
        ("gpu_host", ["--experiment", "x", "--processes"], "--processes"),
    ],
)
def test_missing_value_is_reported(script, args, flag, env):
    proc = run(script, "--dry-run", *args, env=env, check=False)
    assert proc.returncode != 0 and f"{flag} needs a value" in proc.stderr


@pytest.mark.parametrize(
    "script, args, missing",
    [
        ("launch", ["--ckpt-dir", CKPT], "--experiment"),
        ("launch", ["--experiment", "fig4_ellipse"], "--ckpt-dir"),
        ("resume", ["--experiment", "fig4_ellipse", "--copy"], "--ckpt-dir"),
    ],
)
def test_missing_required_flag_is_reported(script, args, missing, env):
    proc = run(script, "--dry-run", *args, env=env, check=False)
    assert proc.returncode != 0 and f"missing required flag {missing}" in proc.stderr
    assert not Path(env["FAKE_LOG"]).exists()


def test_install_needs_a_repo_without_an_origin_remote(env, tmp_path):
    copy = tmp_path / "checkout" / "tpu_setup"
    shutil.copytree(SETUP, copy)  # not a git checkout: no 'origin' to default to
    proc = subprocess.run(
        ["bash", str(copy / "install.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and "missing required flag --repo" in proc.stderr


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("create", ["--preemptible", "--spot"], "not both"),
        ("create", ["--name", "My_TPU"], "--name 'My_TPU'"),
        ("install", ["--copy", "--repo", "https://x/y.git"], "not both"),
        ("launch", ["--experiment", "e", "--ckpt-dir", CKPT, "--parallel", "vmap"], "jit or pmap"),
        ("launch", ["--experiment", "e", "--ckpt-dir", CKPT, "--hosts", "0"], "--hosts"),
        ("launch", ["--experiment", "e", "--ckpt-dir", CKPT, "stray"], "unexpected argument"),
        ("create", ["--spot=yes"], "--spot takes no value"),
        (
            "resume",
            ["--experiment", "e", "--ckpt-dir", CKPT, "--detach", "--max-attempts", "3"],
            "--detach",
        ),
        ("gpu_host", [], "nothing to do"),
    ],
)
def test_bad_flags_are_reported(script, args, message, env):
    proc = run(script, "--dry-run", *args, env=env, check=False)
    assert proc.returncode == 2 and message in proc.stderr and not proc.stdout


# ---- what --dry-run prints ----


def test_create_prints_the_gcloud_create_command(env):
    [cmd] = dry(
        "create",
        *TPU,
        "--accelerator-type",
        "v4-32",
        "--spot",
        "--",
        "--network=net",
        "--reserved",
        env=env,
    )
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "hj-test"]
    assert {
        "--zone=europe-west4-a",
        "--project=my-proj",
        "--accelerator-type=v4-32",
        "--version=tpu-ubuntu2204-base",
        "--spot",
    } <= set(cmd)
    assert cmd[-2:] == ["--network=net", "--reserved"] and "--preemptible" not in cmd


@pytest.mark.parametrize(
    "accel, version",
    [
        ("v4-8", "tpu-ubuntu2204-base"),
        ("v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5p-8", "v2-alpha-tpuv5"),
        ("v6e-8", "v2-alpha-tpuv6e"),
    ],
)
def test_create_picks_the_runtime_version_from_the_type(accel, version, env):
    [cmd] = dry("create", "--accelerator-type", accel, "--preemptible", env=env)
    assert f"--accelerator-type={accel}" in cmd and f"--version={version}" in cmd
    assert "--preemptible" in cmd and "--zone=us-central2-b" in cmd  # the default zone
    [cmd] = dry("create", f"--accelerator-type={accel}", "--version=my-runtime", env=env)
    assert "--version=my-runtime" in cmd


def test_create_recreate_prints_each_case(env):
    cmds = dry("create", *TPU, "--recreate", env=env)
    verbs = [c[4] for c in cmds]
    assert verbs == ["describe", "create", "delete", "create", "start"]
    assert "--quiet" in cmds[2] and "--format=value(state)" in cmds[0]


def test_install_clones_on_every_worker(env):
    [cmd] = dry(
        "install",
        *TPU,
        "--repo",
        "https://github.com/me/hjepa_jax.git",
        "--branch",
        "dev",
        "--python",
        "python3.12",
        env=env,
    )
    assert "--worker=all" in cmd and "--zone=europe-west4-a" in cmd
    script = remote(cmd)
    assert (
        "git clone --depth=1 --branch dev https://github.com/me/hjepa_jax.git hjepa_jax" in script
    )
    assert (
        "bash hjepa_jax/tpu_setup/host_install.sh --dir hjepa_jax --python python3.12 "
        "--jax 'jax[tpu]'"
    ) in script
    subprocess.run(["bash", "-n", "-c", script], check=True)  # valid shell on the worker


def test_install_copy_sends_this_checkout(env, tmp_path):
    cmds = dry("install", *TPU, "--copy", "--worker", "0", "--dir", "src/hj", env=env)
    pack, scp, ssh, rm = cmds
    assert "git" in pack and "tar" in pack and str(tmp_path / "hjepa_jax-src.tar.gz") in pack
    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and "--worker=0" in scp
    assert scp[5:7] == [str(tmp_path / "hjepa_jax-src.tar.gz"), "hj-test:hjepa_jax-src.tar.gz"]
    assert "tar -xzf hjepa_jax-src.tar.gz -C src/hj" in remote(ssh)
    assert rm[:2] == ["rm", "-f"]


def test_install_copy_packs_tracked_and_untracked_files(env, tmp_path):
    proc = run("install", "--dry-run", "--copy", env=env)
    pack = proc.stdout.splitlines()[0]
    subprocess.run(pack, shell=True, executable="bash", check=True, env=env)
    names = subprocess.run(
        ["tar", "-tzf", str(tmp_path / "hjepa_jax-src.tar.gz")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert "tpu_setup/launch.sh" in names and "pyproject.toml" in names
    assert not [n for n in names if n.startswith((".venv/", ".git/"))]


def test_launch_runs_the_experiment_on_every_worker(env):
    [cmd] = dry(
        "launch",
        *TPU,
        "--experiment",
        "fig4_ellipse",
        "--ckpt-dir",
        CKPT,
        "--quick",
        "--parallel",
        "pmap",
        "--",
        "--steps",
        "500",
        "--seed",
        "3",
        env=env,
    )
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "hj-test"]
    assert {"--worker=all", "--zone=europe-west4-a", "--project=my-proj"} <= set(cmd)
    script = remote(cmd)
    words = shlex.split(script)
    i = words.index(".venv/bin/python")
    assert words[i : i + 8] == [
        ".venv/bin/python",
        "-m",
        "hjepa_jax.experiments.run",
        "fig4_ellipse",
        "--out",
        "out/fig4_ellipse",
        "--ckpt-dir",
        CKPT,
    ]
    assert words[i + 8 : i + 15] == [
        "--quick",
        "--parallel",
        "pmap",
        "--steps",
        "500",
        "--seed",
        "3",
    ]
    assert "cd hjepa_jax &&" in script and "tee -a out/fig4_ellipse/run.log" in script
    assert "JAX_NUM_PROCESSES" not in script  # JAX's own detection finds the slice
    subprocess.run(["bash", "-n", "-c", script], check=True)


def test_launch_hosts_detach_and_a_local_ckpt_dir(env):
    [cmd] = dry(
        "launch",
        "--experiment",
        "all",
        "--ckpt-dir",
        CKPT,
        "--hosts",
        "4",
        "--detach",
        "--out",
        "out/x",
        "--worker",
        "2",
        env=env,
    )
    script = remote(cmd)
    assert "--worker=2" in cmd and "JAX_NUM_PROCESSES=4 nohup .venv/bin/python" in script
    assert script.endswith("> out/x/run.log 2>&1 < /dev/null & }")
    proc = run("launch", "--dry-run", "--experiment", "e", "--ckpt-dir", "/tmp/c", env=env)
    assert "warning: --ckpt-dir /tmp/c is not a gs:// bucket" in proc.stderr
    assert (
        "warning"
        not in run("launch", "--dry-run", "--experiment", "e", "--ckpt-dir", CKPT, env=env).stderr
    )


def test_resume_composes_create_install_launch(env):
    cmds = dry(
        "resume",
        *TPU,
        "--accelerator-type",
        "v5litepod-16",
        "--spot",
        "--copy",
        "--experiment",
        "fig3_parabola",
        "--ckpt-dir",
        CKPT,
        "--max-attempts",
        "5",
        "--",
        "--seed",
        "7",
        env=env,
    )
    gcloud = [c[4] for c in cmds if c[0] == "gcloud"]
    assert gcloud == ["describe", "create", "delete", "create", "start", "scp", "ssh", "ssh"]
    create = cmds[1]
    assert {
        "--accelerator-type=v5litepod-16",
        "--version=v2-alpha-tpuv5-lite",
        "--spot",
        "--project=my-proj",
    } <= set(create)
    launch = shlex.split(remote(cmds[-1]))
    assert ["--ckpt-dir", CKPT] == launch[launch.index("--ckpt-dir") :][:2]
    assert launch[launch.index("fig3_parabola") - 1] == "hjepa_jax.experiments.run"
    assert "--seed" in launch and "7" in launch
    assert all(
        "--worker=all" in c for c in cmds if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]
    )


def test_gpu_host_one_process_uses_every_gpu(env):
    cmds = dry(
        "gpu_host",
        "--install",
        "--python",
        "python3.11",
        "--experiment",
        "fig4_ellipse",
        "--ckpt-dir",
        "ckpt/fig4",
        "--",
        "--steps",
        "9",
        env=env,
    )
    assert ["python3.11", "-m", "venv", f"{ROOT}/.venv"] in cmds
    assert [
        f"{ROOT}/.venv/bin/python",
        "-m",
        "pip",
        "install",
        "-q",
        "-e",
        str(ROOT),
        "jax[cuda12]",
        "gcsfs",
    ] in cmds
    assert cmds[-2] == ["cd", str(ROOT)]
    assert cmds[-1] == [
        ".venv/bin/python",
        "-m",
        "hjepa_jax.experiments.run",
        "fig4_ellipse",
        "--out",
        "out/fig4_ellipse",
        "--ckpt-dir",
        "ckpt/fig4",
        "--steps",
        "9",
    ]
    assert not any("CUDA_VISIBLE_DEVICES" in " ".join(c) for c in cmds)


def test_gpu_host_one_process_per_gpu(env):
    proc = run(
        "gpu_host",
        "--dry-run",
        "--experiment",
        "fig4_ellipse",
        "--processes",
        "4",
        "--port",
        "23456",
        env=env,
    )
    lines = proc.stdout.splitlines()
    starts = [line for line in lines if "hjepa_jax.experiments.run" in line]
    assert len(starts) == 4 and lines[-1] == "wait"
    for i, line in enumerate(starts):
        assert line.startswith(f"env CUDA_VISIBLE_DEVICES={i} .venv/bin/python -m ")
        assert line.endswith(
            f"--coordinator 127.0.0.1:23456 --num-processes 4 --process-id {i}"
            f" > out/fig4_ellipse/process-{i}.log 2>&1 &"
        )
    subprocess.run(["bash", "-n", "-c", proc.stdout], check=True)


@pytest.mark.parametrize(
    "script, args",
    [
        ("create", ["--recreate"]),
        ("install", ["--repo", "git@github.com:me/it's.git"]),
        ("install", ["--copy"]),
        ("launch", ["--experiment", "e", "--ckpt-dir", CKPT]),
        ("resume", ["--experiment", "e", "--ckpt-dir", CKPT, "--copy"]),
        ("gpu_host", ["--install", "--experiment", "e", "--processes", "2"]),
        ("host_install", []),
        ("tpu_hosts", []),
    ],
)
def test_dry_run_output_is_a_valid_script(script, args, env):
    proc = run(script, "--dry-run", *args, env=env)
    assert proc.stdout.strip()
    subprocess.run(["bash", "-n", "-c", proc.stdout], check=True)
    assert not Path(env["FAKE_LOG"]).exists()


# ---- real runs, against the fake gcloud ----


@pytest.mark.parametrize(
    "script, args",
    [
        ("create", [*TPU, "--accelerator-type", "v4-32", "--", "--labels=a=b c"]),
        ("launch", [*TPU, "--experiment", "fig4_ellipse", "--ckpt-dir", CKPT, "--", "--seed", "1"]),
        ("install", [*TPU, "--repo", "https://x/hjepa_jax.git"]),
    ],
)
def test_a_real_run_calls_what_dry_run_prints(script, args, env):
    printed = dry(script, *args, env=env)
    run(script, *args, env=env)
    assert gcloud_calls(env) == [cmd[1:] for cmd in printed]


@pytest.mark.parametrize(
    "state, verbs",
    [
        ("", ["describe", "create"]),
        ("PREEMPTED", ["describe", "delete", "create"]),
        ("READY", ["describe"]),
        ("STOPPED", ["describe", "start"]),
    ],
)
def test_recreate_acts_on_the_state(state, verbs, env):
    env["FAKE_STATE"] = state
    run("create", "--recreate", env=env)
    assert [c[3] for c in gcloud_calls(env)] == verbs


def test_recreate_refuses_a_busy_tpu(env):
    env["FAKE_STATE"] = "CREATING"
    proc = run("create", "--recreate", env=env, check=False)
    assert proc.returncode == 1 and "CREATING" in proc.stderr


def test_resume_retries_a_failed_round(env):
    env.update(FAKE_STATE="READY", FAKE_RC="0")
    args = ["--experiment", "e", "--ckpt-dir", CKPT, "--repo", "https://x/y.git"]
    run("resume", *args, env=env)
    assert [c[3] for c in gcloud_calls(env)] == ["describe", "ssh", "ssh"]
    Path(env["FAKE_LOG"]).unlink()
    env["FAKE_RC"] = "255"  # every gcloud call fails, as after a preemption
    proc = run("resume", *args, "--max-attempts", "2", "--retry-wait", "0", env=env, check=False)
    assert proc.returncode == 1 and "round 2 of 2 failed" in proc.stderr
    assert [c[3] for c in gcloud_calls(env)] == ["describe", "create"] * 2


def test_tpu_hosts_counts_the_workers(env, tmp_path):
    endpoints = tmp_path / "endpoints"
    endpoints.write_text("a:10.0.0.1:8470,b:10.0.0.2:8470,c:10.0.0.3:8470,d:10.0.0.4:8470")
    env["HJ_TPU_METADATA_URL"] = endpoints.as_uri()
    assert run("tpu_hosts", env=env).stdout == "4\n"
    endpoints.write_text("a:10.0.0.1:8470")
    assert run("tpu_hosts", env=env).stdout == "1\n"
    env["HJ_TPU_METADATA_URL"] = (tmp_path / "missing").as_uri()  # no answer: no guess of 1
    proc = run("tpu_hosts", env=env, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "gave no worker endpoints" in proc.stderr


def test_gpu_host_waits_for_every_process_and_stops_them_on_a_failure(env, tmp_path):
    fake_python = textwrap.dedent("""\
        #!/usr/bin/env bash
        # A stand-in for the venv's python: process 1 fails when FAIL is set, others sleep.
        echo "gpu=$CUDA_VISIBLE_DEVICES args=$*"
        if [[ -n ${FAIL:-} && " $* " == *" --process-id 1 "* ]]; then exit 3; fi
        exec sleep "${SLEEP:-0}"
        """)
    (tmp_path / "repo" / ".venv" / "bin").mkdir(parents=True)
    _executable(tmp_path / "repo" / ".venv" / "bin" / "python", fake_python)
    args = ["--dir", str(tmp_path / "repo"), "--experiment", "fig4_ellipse", "--processes", "3"]
    run("gpu_host", *args, env=env)
    for i in range(3):
        log = (tmp_path / "repo" / "out" / "fig4_ellipse" / f"process-{i}.log").read_text()
        assert log.startswith(f"gpu={i} args=-m hjepa_jax.experiments.run fig4_ellipse")
        assert log.rstrip().endswith(f"--num-processes 3 --process-id {i}")
    env.update(FAIL="1", SLEEP="30")
    start = time.perf_counter()
    proc = run("gpu_host", *args, env=env, check=False)
    assert proc.returncode == 1 and "exited with status 3" in proc.stderr
    assert time.perf_counter() - start < 10  # the sleeping processes were stopped


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_bash_with_strict_mode(script):
    path = SETUP / f"{script}.sh"
    assert os.access(path, os.X_OK), f"chmod +x {path}"
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in lines[:5]
