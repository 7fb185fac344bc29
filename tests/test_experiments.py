"""The experiments as a user runs them: `python -m hjepa_jax.experiments.run`, outputs, quality."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hjepa_jax.experiments import common, report, run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# Each experiment at a tiny size: a few steps and small grids, to check that it runs end to end
# from the command line and writes what a user reads (cli_outputs.check). How well each learns
# is checked at the quick size by `make reproduce` and by the tests that name a trained
# model's numbers. Where a quick run goes through the command line anyway, it stands in for
# the tiny run (which would check nothing more, and cost as much again): for the experiments
# in QUICK, run here to check what they learn, and for those in ELSEWHERE, whose test modules
# run their quick size (planning_two_rooms: a tiny size, for its other tests) through the
# command line and check its outputs the same way.
QUICK = ("fig3_parabola", "fig4_ellipse", "methods_landscapes", "jepa_digits")
ELSEWHERE = {
    "fig5_collapse": "test_fig5_collapse.py",
    "hjepa_moving_shapes": "test_hjepa_moving_shapes.py",
    "planning_two_rooms": "test_planning_two_rooms.py",
}
TINY = {
    "ijepa_images": "--num-train 64 --num-test 32 --image-size 32 --patch-size 8 --width 16 "
    "--depth 1 --heads 2 --pred-width 8 --pred-depth 1 --pred-heads 2 --steps 4 "
    "--warmup-steps 1 --batch-size 8 --eval-every 2 --probe-train 32 --probe-test 32 "
    "--knn-k 5 --log-every 2",
}
HERE = [name for name in run.EXPERIMENTS if name not in ELSEWHERE]


def test_every_experiment_runs_from_the_command_line():
    assert sorted([*QUICK, *ELSEWHERE, *TINY]) == sorted(run.EXPERIMENTS)  # each in one group
    for name, module in ELSEWHERE.items():
        source = (ROOT / "tests" / module).read_text()
        assert f'run.main(["{name}", "--quick"' in source and "cli_outputs.check(" in source


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The output folder of this module's command-line runs, one subfolder per experiment."""
    return tmp_path_factory.mktemp("out")


# The suite's LLVM optimization level 0 (tests/conftest.py) becomes level 2 for the quick runs:
# they train for long enough that level 0 runs them slower than it compiles them faster
# (together about 120 s against 90 s on 2 cores), and level 2 trains them as fast as XLA's
# default, 3, which compiles slower. Where the suite sets no level, neither do they.
LEVEL_0, LEVEL_2 = "--xla_backend_optimization_level=0", "--xla_backend_optimization_level=2"


@pytest.fixture(scope="module")
def quick(outputs):
    """quick(NAME): the output folder of `hjepa-run NAME --quick`, run once for this module,
    in a process of its own compiled at LLVM optimization level 2.

    The experiments that take seconds at their quick size are checked here for what they
    learn; the others (fig5_collapse, hjepa_moving_shapes) have test modules of their own, and
    planning_two_rooms's quick run (minutes) is `make reproduce`'s.
    """
    done = set()
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "").replace(LEVEL_0, LEVEL_2)}

    def get(name: str) -> Path:
        assert name in QUICK, name  # the others' folders hold tiny runs
        if name not in done:
            res = cli(name, "--quick", "--out", str(outputs / name), env=env, timeout=600)
            assert res.returncode == 0, res.stderr
            done.add(name)
        return outputs

    return get


@pytest.fixture(scope="module")
def tiny_all(outputs, quick):
    """The experiments of this module through the command line, at their tiny size (at their
    quick size for those in QUICK), then the report."""
    results = {}
    for name in HERE:
        if name in QUICK:
            quick(name)
        else:
            flags = TINY[name].split()
            assert run.main([name, "--quick", "--out", str(outputs / name), *flags]) == 0
        results[name] = metrics(outputs, name)
    report.write_report(outputs, run.EXPERIMENTS, results)
    return outputs


def metrics(out: Path, name: str) -> dict:
    return json.loads((out / name / "metrics.json").read_text())


@pytest.mark.parametrize("name", sorted(HERE))
def test_tiny_run_writes_metrics_and_figures(tiny_all, name):
    cli_outputs.check(tiny_all / name)


def test_report_shows_each_figure_claim_and_numbers(tiny_all):
    report_md = (tiny_all / "report.md").read_text()
    for name in HERE:
        assert run.EXPERIMENTS[name].CLAIM in report_md
        assert f"({name}/{name}.png)" in report_md
        assert f"| final_loss | {metrics(tiny_all, name)['final_loss']:.4g} |" in report_md
    assert all(module.CLAIM and module.TITLE for module in run.EXPERIMENTS.values())


def test_the_report_follows_the_umask(tiny_all):
    """report.md is written as open() would (0644 under umask 022), as are metrics.json and
    the figures (cli_outputs.check)."""
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((tiny_all / "report.md").stat().st_mode) == 0o666 & ~mask


def test_fig4_quick_learns_the_ellipse(quick):
    m = metrics(quick("fig4_ellipse"), "fig4_ellipse")
    assert m["corr_free_energy_true_sqdist"] > 0.98  # F_inf behaves as the squared distance
    assert m["radius_rel_error_max"] < 0.05
    assert m["heldout_free_energy_mean"] < 2 * m["noise_floor"]
    assert m["inner_minus_grid_mean"] < 1e-3  # the inner loop is as good as a 48-angle grid


def test_fig3_quick_both_energies_fit_the_parabola(quick):
    m = metrics(quick("fig3_parabola"), "fig3_parabola")
    for energy in ("predictor", "contrastive"):
        assert m[f"rmse_{energy}"] < 0.05  # y_hat from infer against x^2 on held-out x
        assert m[f"energy_off_curve_{energy}"] > 10 * m[f"energy_on_curve_{energy}"]


def cli(*args, env=None, timeout=300):
    """`hjepa-run ARGS` in a process of its own (in env, default this one's)."""
    return subprocess.run(
        [sys.executable, "-m", "hjepa_jax.experiments.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_help_lists_config_fields_with_defaults():
    res = cli("fig4_ellipse", "--help")
    assert res.returncode == 0
    assert "--inner-steps" in res.stdout and "(default 30)" in res.stdout
    assert "--seed" in res.stdout and "--quick" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fig4_ellipse", "--bogus", "1"], "fig4_ellipse: error: unrecognized arguments: --bogus"),
        (["fig4_ellipse", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
        (["fig4_ellipse", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
        (["fig4_ellipse", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["fig4_ellipse", "--learning-rate", "0"], "argument --learning-rate: must be > 0"),
        (["fig4_ellipse", "--hidden", "8,0"], "argument --hidden: must be >= 1, got 0"),
        (["fig4_ellipse", "--grad", "implicit"], "argument --grad: invalid choice: 'implicit'"),
        (["fig4_ellipse", "--ckpt-every", "0"], "argument --ckpt-every: must be >= 1, got 0"),
        (["jepa_digits", "--encoder", "resnet"], "argument --encoder: invalid choice: 'resnet'"),
        (["planning_two_rooms", "--horizon-plan", "1"], "must be >= replan_every (2)"),
        (["planning_two_rooms", "--planners", "cem,astar"], "planners must be among"),
        (["ijepa_images", "--quick", "--preset", "vit_b16_imagenet"], "--quick and --preset"),
        (["ijepa_images", "--preset", "vit_h14"], "argument --preset: invalid choice"),
        (["ijepa_images", "--patch-size", "7"], "patch_size=7 must divide image_size=64"),
        (["ijepa_images", "--width", "100"], "heads=3 does not divide width=100"),
        (["all", "--bogus"], "hjepa-run all: error: unrecognized arguments: --bogus"),
        (["fig9_unknown"], "invalid choice: 'fig9_unknown'"),
    ],
)
def test_bad_flags_are_refused_in_one_line_and_create_nothing(tmp_path, capsys, args, message):
    """A bad flag gives one line naming it (no traceback, no usage block), exit status 2, and
    leaves no output folder behind."""
    out = tmp_path / "run"
    code, err = refused(capsys, *args, "--out", str(out))
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def refused(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of `hjepa-run ARGS` run in this process, which must exit."""
    with pytest.raises(SystemExit) as exit_:
        run.main(list(args))
    return exit_.value.code, capsys.readouterr().err


def test_a_bad_flag_prints_no_traceback_from_the_console():
    res = cli("fig4_ellipse", "--out", "never_made", "--steps", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        "hjepa-run fig4_ellipse: error: argument --steps: must be >= 1, got 0 "
        "(see hjepa-run fig4_ellipse --help)"
    )
    assert not (ROOT / "never_made").exists()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("file/run", "is a file, not a folder"),  # below a file
        ("/proc/hjepa_run/out", "cannot create folders in /proc"),  # read-only, even for root
    ],
)
def test_an_out_folder_that_cannot_be_made_is_refused(tmp_path, capsys, out, message):
    (tmp_path / "file").write_text("")
    out = out if out.startswith("/") else str(tmp_path / out)
    code, err = refused(capsys, "fig4_ellipse", "--out", out)
    assert code == 2 and f"--out {out}: " in err and message in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_configs_refuse_bad_fields_when_built():
    """The same checks hold for a config built in Python, naming the field."""
    with pytest.raises(ValueError, match="fig4_ellipse.Config: steps must be >= 1, got 0"):
        run.fig4_ellipse.Config(steps=0)
    with pytest.raises(ValueError, match="grad must be one of \\['envelope', 'unroll'\\]"):
        run.fig4_ellipse.Config(grad="implicit")


def test_titles_and_help_cite_no_tracker():
    for name, module in run.EXPERIMENTS.items():
        assert "Issue" not in module.TITLE and "Issue" not in module.__doc__, name


def test_flags_override_the_config_and_the_cli_logs_progress(tmp_path):
    """Flags set config fields, the others keep their (quick) defaults; the command line shows
    what it runs and when it finishes (INFO lines on stderr)."""
    args = ["fig4_ellipse", "--quick", "--steps", "3", "--grid", "11", "--hidden", "8,8"]
    res = cli(*args, "--seed", "2", "--out", str(tmp_path / "fig4"))
    assert res.returncode == 0, res.stderr
    assert "fig4_ellipse: starting, config" in res.stderr
    assert "fig4_ellipse: done in" in res.stderr
    config = metrics(tmp_path, "fig4")["config"]
    assert config["steps"] == 3 and config["hidden"] == [8, 8] and config["seed"] == 2
    assert config["n_train"] == 256  # untouched fields keep their (quick) defaults


def test_save_metrics_refuses_missing_keys_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match=r"missing required metrics \['steps'"):
        common.save_metrics(
            tmp_path / "metrics.json", {"final_loss": 1.0}, run.fig4_ellipse.Config()
        )
    assert not list(tmp_path.iterdir())


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        common.atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_methods_landscapes_quick_every_method_learns_the_data(quick):
    from hjepa_jax.experiments import methods_landscapes as ml

    m = metrics(quick("methods_landscapes"), "methods_landscapes")
    for dataset in ("ellipse", "moons"):
        assert 0.9 < m[f"auc_{dataset}_oracle"] < 1.0  # the ceiling: the true distance
        for method in ml.METHODS:
            assert m[f"auc_{dataset}_{method}"] > 0.55, (dataset, method)  # above chance
    for method in ml.CONTRASTIVE:  # contrastive methods near the ceiling on the ellipse
        assert m[f"auc_ellipse_{method}"] > 0.85, method
    assert m["auc_mean_contrastive"] > 0.8 and m["auc_mean_regularized"] > 0.75


def test_jepa_digits_quick_beats_baselines_and_collapses_without_vicreg(quick):
    m = metrics(quick("jepa_digits"), "jepa_digits")
    assert m["probe_acc"] > m["probe_acc_random"] and m["probe_acc"] > m["probe_acc_pixels"]
    assert m["probe_acc"] > m["probe_acc_no_vicreg"] + 0.05
    assert m["embedding_std"] > 50 * m["embedding_std_no_vicreg"]  # the collapse, and its cure
    with np.load(quick("jepa_digits") / "jepa_digits" / "embeddings.npz") as e:
        assert e["train_x"].shape == (1500, 64) and e["test_x"].shape == (297, 64)
        assert e["train_y"].shape == (1500,) and set(np.unique(e["test_y"])) == set(range(10))


@pytest.mark.parametrize("encoder", ["mlp", "conv", "vit"])
def test_jepa_digits_encoders_are_configurable(encoder):
    import jax
    import jax.numpy as jnp

    from hjepa_jax.experiments import jepa_digits
    from hjepa_jax.models.digits_jepa import DigitsJEPA

    cfg = jepa_digits.Config(encoder=encoder, embed_dim=8, hidden=(16,))
    model = DigitsJEPA(cfg.model_config(), (8, 8, 1))
    params = jax.jit(model.init)(jax.random.PRNGKey(0))  # jitted, as trained: one compile
    images = jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 1))
    loss, m = jax.jit(model.loss)(params, (images, jnp.zeros(4)), jax.random.PRNGKey(2))
    assert jnp.isfinite(loss) and m["embedding_std"] > 0
    with pytest.raises(ValueError, match=r"encoder must be one of \['mlp', 'conv', 'vit'\]"):
        jepa_digits.Config(encoder="resnet")


def test_experiments_stay_lean_and_benchmarks_use_only_the_library():
    """An experiment configures a run, calls the library and draws: at most 400 lines, its
    models in hjepa_jax.models. Benchmarks import the library, never an experiment."""
    for path in (ROOT / "hjepa_jax" / "experiments").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name
    for path in (ROOT / "benchmarks").glob("*.py"):
        assert "hjepa_jax.experiments" not in path.read_text(), path.name
