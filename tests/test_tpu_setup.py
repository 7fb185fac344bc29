"""tpu_setup/*.sh as a user runs them: --dry-run prints the exact commands, flags are checked.

No network and no gcloud: a fake `gcloud` first on PATH records how it is called, so the tests
also check that --dry-run never calls it and that a real run calls exactly what it printed.
"""

import json
import os
import shlex
import shutil
import signal
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
OUT = "gs://my-bucket/runs/fig4"
RUN = ["--experiment", "fig4_ellipse", "--out", OUT, "--ckpt-dir", CKPT]  # resume.sh's minimum

FAKE_GCLOUD = """\
#!{python}
# Records its arguments, one JSON list a line. With $FAKE_PLAN, a JSON file
# {{KEY: [[STDOUT, RC] or [STDOUT, RC, STDERR], ...]}}, a call of KEY (see `label` in the
# tests) answers with the next entry of KEY's list, the last one repeating. Otherwise
# `describe` prints $FAKE_STATE and every call exits with $FAKE_RC.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
words = [a for a in args if a != "alpha"]
key = ("qr-" if words[2:3] == ["queued-resources"] else "") + (words[3] if len(words) > 3 else "")
if key == "ssh":
    command = args[args.index("--command") + 1] if "--command" in args else ""
    if "hjepa_run.exit" in command and "nohup" not in command:
        key = "probe"  # resume.sh's look at the run's state
plan_file = os.environ.get("FAKE_PLAN")
plan = json.load(open(plan_file)) if plan_file else {{}}
if key in plan:
    counts_file = plan_file + ".counts"
    counts = json.load(open(counts_file)) if os.path.exists(counts_file) else {{}}
    n = counts.get(key, 0)
    counts[key] = n + 1
    json.dump(counts, open(counts_file, "w"))
    out, rc, err = (list(plan[key][min(n, len(plan[key]) - 1)]) + [""])[:3]
    if out:
        print(out)
    if err:
        print(err, file=sys.stderr)
    sys.exit(rc)
if "describe" in args and os.environ.get("FAKE_STATE"):
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


def plan(env: dict, tmp_path: Path, **answers) -> None:
    """Make the fake gcloud answer each KEY with the entries of answers[KEY] in turn."""
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(answers))
    env["FAKE_PLAN"] = str(path)


NOT_FOUND = ["", 1, "ERROR: (gcloud.compute.tpus.tpu-vm.describe) NOT_FOUND: Resource not found"]


def label(call: list[str]) -> str:
    """A gcloud call in short: its verb, 'qr-' before a queued resource's, 'probe' for
    resume.sh's look at the run (an ssh command that reads hjepa_run.exit)."""
    words = [w for w in call if w != "alpha"]
    verb = ("qr-" if words[2] == "queued-resources" else "") + words[3]
    if verb == "ssh":
        command = call[call.index("--command") + 1]
        if "hjepa_run.exit" in command and "nohup" not in command:
            return "probe"
    return verb


def background_job(script: str) -> list[str]:
    """The words of the command that a detached launch's remote script starts (before the
    `; echo $? > ~/hjepa_run.exit` that records its exit status)."""
    job = shlex.split(script[script.index("bash -c ") :])[2]
    return shlex.split(job[: job.index("; echo $? > ~/hjepa_run.exit")])


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
        ("resume", ["--experiment", "fig4_ellipse", "--ckpt-dir", CKPT], "--out"),
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
        ("create", ["--best-effort"], "with --queued"),
        ("create", ["--queued", "--preemptible"], "not --preemptible"),
        ("create", ["--queued", "--spot", "--best-effort"], "not both"),
        ("create", ["--accelerator-type", "v5litepod-16"], "not offered in the default zone"),
        ("resume", [*RUN[:2], "--out", "out/x", "--ckpt-dir", CKPT], "--out out/x: give a gs://"),
        ("resume", [*RUN[:4], "--ckpt-dir", "/tmp/c"], "--ckpt-dir /tmp/c: give a gs://"),
        ("resume", [*RUN, "--max-retries", "-1"], "--max-retries"),
        ("resume", [*RUN, "--detach"], "unknown flag --detach"),  # it always detaches
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
    "accel, version, zone",
    [
        ("v4-8", "tpu-ubuntu2204-base", []),  # the default zone offers v4
        ("v5litepod-16", "v2-alpha-tpuv5-lite", ["--zone", "us-west4-a"]),
        ("v5p-8", "v2-alpha-tpuv5", ["--zone", "us-east5-a"]),
        ("v6e-8", "v2-alpha-tpuv6e", ["--zone", "us-east1-d"]),
    ],
)
def test_create_picks_the_runtime_version_from_the_type(accel, version, zone, env):
    [cmd] = dry("create", "--accelerator-type", accel, "--preemptible", *zone, env=env)
    assert f"--accelerator-type={accel}" in cmd and f"--version={version}" in cmd
    assert "--preemptible" in cmd and f"--zone={zone[1] if zone else 'us-central2-b'}" in cmd
    [cmd] = dry("create", f"--accelerator-type={accel}", "--version=my-runtime", *zone, env=env)
    assert "--version=my-runtime" in cmd


def test_create_refuses_a_type_the_default_zone_lacks(env):
    proc = run("create", "--dry-run", "--accelerator-type", "v5litepod-8", env=env, check=False)
    assert proc.returncode == 2 and "us-west4-a" in proc.stderr and "--zone" in proc.stderr
    # a zone given is not second-guessed (the zone table changes)
    [cmd] = dry("create", "--accelerator-type", "v5litepod-8", "--zone", "asia-x1-a", env=env)
    assert "--zone=asia-x1-a" in cmd


def test_create_queued_prints_the_queued_resource_command(env):
    proc = run(
        "create",
        "--dry-run",
        *TPU,
        "--accelerator-type",
        "v4-32",
        "--queued",
        "--spot",
        "--",
        "--valid-until-duration=6h",
        env=env,
    )
    [cmd] = [shlex.split(line) for line in proc.stdout.splitlines() if not line.startswith("#")]
    assert cmd == [
        "gcloud", "compute", "tpus", "queued-resources", "create", "hj-test",
        "--node-id=hj-test", "--zone=europe-west4-a", "--project=my-proj",
        "--accelerator-type=v4-32", "--runtime-version=tpu-ubuntu2204-base", "--spot",
        "--valid-until-duration=6h",
    ]  # fmt: skip
    assert "# the TPU VM hj-test exists once the queued resource is ACTIVE" in proc.stdout
    [cmd] = dry("create", "--queued", "--best-effort", env=env)  # a flag of gcloud alpha only
    assert cmd[:5] == ["gcloud", "alpha", "compute", "tpus", "queued-resources"]
    assert cmd[-1] == "--best-effort" and "--spot" not in cmd


def test_create_queued_recreate_prints_each_case(env):
    cmds = dry("create", "--queued", "--spot", "--recreate", env=env)
    assert [label(c[1:]) for c in cmds] == [
        "describe", "qr-describe", "qr-create", "qr-delete", "qr-create", "qr-delete",
        "qr-create", "start",
    ]  # fmt: skip
    assert ["--force", "--quiet"] == cmds[3][-2:] and "--format=value(state.state)" in cmds[1]


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
    assert not [n for n in names if n.startswith((".venv", ".git/"))]


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
    assert "--worker=2" in cmd
    job = shlex.split(script[script.index("bash -c ") :])[2]  # what runs in the background
    assert job.startswith("cd hjepa_jax && mkdir -p out/x && JAX_NUM_PROCESSES=4 .venv/bin/python")
    assert job.endswith("; echo $? > ~/hjepa_run.exit")
    assert "setsid nohup bash -c" in script and ">> hjepa_run.log 2>&1 < /dev/null &" in script
    assert script.endswith(
        'echo $! > hjepa_run.pid; echo "$(hostname): started pid $!, log ~/hjepa_run.log"'
    )
    subprocess.run(["bash", "-n", "-c", script], check=True)
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
        "--out",
        OUT,
        "--ckpt-dir",
        CKPT,
        "--max-retries",
        "5",
        "--",
        "--seed",
        "7",
        env=env,
    )
    gcloud = [label(c[1:]) for c in cmds if c[0] == "gcloud"]
    assert gcloud == [
        "describe", "describe", "create", "delete", "create", "start", "probe", "scp", "ssh", "ssh"
    ]  # fmt: skip
    create = cmds[2]
    assert {
        "--accelerator-type=v5litepod-16",
        "--version=v2-alpha-tpuv5-lite",
        "--spot",
        "--project=my-proj",
    } <= set(create)
    script = remote(cmds[-1])
    assert "setsid nohup" in script  # always detached
    launch = background_job(script)
    assert ["--ckpt-dir", CKPT] == launch[launch.index("--ckpt-dir") :][:2]
    assert ["--out", OUT] == launch[launch.index("--out") :][:2]
    assert launch[launch.index("fig3_parabola") - 1] == "hjepa_jax.experiments.run"
    assert launch[-2:] == ["--seed", "7"] and "mkdir" not in launch  # no folder for a bucket
    ssh = [c for c in cmds if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]
    assert all("--worker=all" in c for c in ssh if label(c[1:]) != "probe")
    assert [c for c in ssh if "--worker=0" in c] == [cmds[6]]  # the run is watched on worker 0


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
        ("resume", [*RUN, "--copy"]),
        ("resume", [*RUN, "--copy", "--queued", "--best-effort"]),
        ("launch", ["--experiment", "e", "--ckpt-dir", CKPT, "--out", OUT, "--detach"]),
        ("create", ["--queued", "--recreate"]),
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
        ("create", [*TPU, "--queued", "--spot", "--accelerator-type", "v4-32"]),
        ("create", [*TPU, "--queued", "--best-effort", "--", "--reserved"]),
        ("launch", [*TPU, *RUN, "--detach", "--hosts", "4"]),
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


def test_recreate_queued_acts_on_the_states(env, tmp_path):
    waiting = [["WAITING_FOR_RESOURCES", 0]]
    cases = [
        ({"describe": [["READY", 0]]}, ["describe"]),
        ({"describe": [["PREEMPTED", 0]]}, ["describe", "qr-delete", "qr-create"]),
        ({"describe": [NOT_FOUND], "qr-describe": [NOT_FOUND]},
         ["describe", "qr-describe", "qr-create"]),
        ({"describe": [NOT_FOUND], "qr-describe": [["FAILED", 0]]},
         ["describe", "qr-describe", "qr-delete", "qr-create"]),
        ({"describe": [NOT_FOUND], "qr-describe": waiting}, ["describe", "qr-describe"]),
    ]  # fmt: skip
    for i, (answers, labels) in enumerate(cases):
        Path(env["FAKE_LOG"]).unlink(missing_ok=True)
        (tmp_path / str(i)).mkdir()
        plan(env, tmp_path / str(i), **answers)
        run("create", "--queued", "--spot", "--recreate", env=env)
        assert [label(c) for c in gcloud_calls(env)] == labels, answers


RESUME = [*TPU, *RUN, "--repo", "https://x/y.git", "--poll-wait", "0"]
SEED = ["--", "--seed", "7"]  # experiment flags, last


def test_resume_relaunches_the_same_run_after_a_preemption(env, tmp_path):
    plan(
        env,
        tmp_path,
        describe=[["READY", 0], ["PREEMPTED", 0], ["PREEMPTED", 0], ["READY", 0]],
        probe=[["running", 0], ["none", 0], ["exit 0", 0]],
    )
    proc = run("resume", *RESUME, "--spot", "--accelerator-type", "v4-32", *SEED, env=env)
    calls = gcloud_calls(env)
    assert [label(c) for c in calls] == [
        "describe", "probe",  # a run started earlier is going: watch it
        "describe", "describe", "delete", "create",  # PREEMPTED: create.sh --recreate
        "describe", "probe", "ssh", "ssh",  # READY, nothing runs: install.sh, launch.sh --detach
        "describe", "probe",  # exit status 0: done
    ]  # fmt: skip
    assert {"--spot", "--accelerator-type=v4-32"} <= set(calls[5])
    launch = remote(["gcloud", *calls[9]])
    assert "setsid nohup bash -c" in launch and "--worker=all" in calls[9]
    job = background_job(launch)
    assert job[job.index("--out") :][:4] == ["--out", OUT, "--ckpt-dir", CKPT]  # the same bucket
    assert job[-2:] == ["--seed", "7"]
    assert "retry 1 of 10" in proc.stderr and "the run is done" in proc.stderr


def test_resume_gives_up_when_the_retries_are_used_up(env, tmp_path):
    plan(env, tmp_path, describe=[["PREEMPTED", 0]])
    proc = run("resume", *RESUME, "--max-retries", "2", *SEED, env=env, check=False)
    assert proc.returncode == 1 and "retries of --max-retries are used up" in proc.stderr
    assert [label(c) for c in gcloud_calls(env)] == [
        *["describe", "describe", "delete", "create"] * 2, "describe"
    ]  # fmt: skip


def test_resume_counts_a_failed_create_as_a_retry(env, tmp_path):
    plan(env, tmp_path, describe=[NOT_FOUND], create=[["", 1, "ERROR: no more capacity"]])
    proc = run("resume", *RESUME, "--max-retries", "1", *SEED, env=env, check=False)
    assert proc.returncode == 1 and "creating hj-test failed" in proc.stderr
    assert [label(c) for c in gcloud_calls(env)] == ["describe", "describe", "create"] * 2 + [
        "describe"
    ]


def test_resume_fails_at_once_when_gcloud_cannot_tell_the_state(env, tmp_path):
    plan(env, tmp_path, describe=[["", 1, "ERROR: (gcloud) PERMISSION_DENIED: no"]])
    proc = run("resume", *RESUME, *SEED, env=env, check=False)
    assert proc.returncode == 1 and "PERMISSION_DENIED" in proc.stderr
    assert "gcloud compute tpus tpu-vm describe hj-test" in proc.stderr
    assert [label(c) for c in gcloud_calls(env)] == ["describe"]


def test_resume_stops_on_a_run_that_failed_on_a_ready_tpu(env, tmp_path):
    plan(env, tmp_path, describe=[["READY", 0]], probe=[["running", 0], ["exit 3", 0]])
    proc = run("resume", *RESUME, *SEED, env=env, check=False)
    assert proc.returncode == 1 and "the run stopped (exit 3)" in proc.stderr
    assert "tail -n 50 ~/hjepa_run.log" in proc.stderr  # where to look
    assert [label(c) for c in gcloud_calls(env)] == ["describe", "probe"] * 3


def test_resume_once_launches_and_returns(env, tmp_path):
    plan(env, tmp_path, describe=[["READY", 0]], probe=[["none", 0]])
    proc = run("resume", *RESUME, "--once", *SEED, env=env)
    assert [label(c) for c in gcloud_calls(env)] == ["describe", "probe", "ssh", "ssh"]
    assert "--once: not waiting" in proc.stderr


def test_resume_queued_waits_for_the_request(env, tmp_path):
    plan(
        env,
        tmp_path,
        describe=[NOT_FOUND, NOT_FOUND, NOT_FOUND, ["READY", 0]],
        **{"qr-describe": [NOT_FOUND, NOT_FOUND, ["WAITING_FOR_RESOURCES", 0]]},
        probe=[["none", 0], ["exit 0", 0]],
    )
    run("resume", *RESUME, "--queued", "--spot", *SEED, env=env)
    assert [label(c) for c in gcloud_calls(env)] == [
        "describe", "qr-describe",  # nothing yet: request it (create.sh --recreate --queued)
        "describe", "qr-describe", "qr-create",
        "describe", "qr-describe",  # WAITING_FOR_RESOURCES: wait
        "describe", "probe", "ssh", "ssh",  # READY: install, launch
        "describe", "probe",  # done
    ]  # fmt: skip


# ---- the detached run and resume.sh's look at it, run here with a stand-in for the worker ----


def test_detached_launch_and_the_run_state_on_the_worker(env, tmp_path):
    home = tmp_path / "home"
    venv_bin = home / "hjepa_jax" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    _executable(
        venv_bin / "python",
        '#!/usr/bin/env bash\necho "python $*"\nsleep "${SLEEP:-0}"\nexit "${RC:-0}"\n',
    )
    [launch] = dry("launch", "--experiment", "e", "--ckpt-dir", CKPT, "--detach", env=env)
    [probe] = [c for c in dry("resume", *RUN, "--repo", "r", env=env) if "probe" == label(c[1:])]
    worker = {**env, "HOME": str(home)}

    def on_worker(cmd, **extra):
        return subprocess.run(
            ["bash", "-c", remote(cmd)], env={**worker, **extra}, capture_output=True,
            text=True, timeout=20,
        )  # fmt: skip

    def state():
        return on_worker(probe).stdout.strip()

    def wait_for_exit():
        for _ in range(200):
            if (home / "hjepa_run.exit").exists() and (home / "hjepa_run.exit").read_text():
                return
            time.sleep(0.05)
        raise AssertionError("no exit status")

    assert state() == "none"
    start = time.perf_counter()
    first = on_worker(launch, SLEEP="30")
    assert first.returncode == 0 and "started pid" in first.stdout
    assert time.perf_counter() - start < 10  # it returns at once
    pid = int((home / "hjepa_run.pid").read_text())
    try:
        assert state() == "running"
        again = on_worker(launch)
        assert again.returncode == 1 and "a run is going already" in again.stderr
    finally:
        os.killpg(pid, signal.SIGTERM)  # its own process group (setsid)
    for _ in range(200):
        if state() != "running":
            break
        time.sleep(0.05)
    assert state() == "none"  # killed: no exit status
    assert on_worker(launch, RC="3").returncode == 0
    wait_for_exit()
    assert state() == "exit 3"
    assert on_worker(launch).returncode == 0
    wait_for_exit()
    assert state() == "exit 0"
    log = (home / "hjepa_run.log").read_text()
    assert f"python -m hjepa_jax.experiments.run e --out out/e --ckpt-dir {CKPT}" in log
    assert (home / "hjepa_jax" / "out" / "e").is_dir()


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
