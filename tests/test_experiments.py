"""The experiments as a user runs them: `python -m hjepa_jax.experiments.run`, outputs, quality."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hjepa_jax.experiments import common, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory):
    """`python -m hjepa_jax.experiments.run all --quick --out OUT`, once for this module."""
    out = tmp_path_factory.mktemp("out")
    assert run.main(["all", "--quick", "--out", str(out)]) == 0
    return out


def metrics(out: Path, name: str) -> dict:
    return json.loads((out / name / "metrics.json").read_text())


@pytest.mark.parametrize("name", sorted(run.EXPERIMENTS))
def test_all_quick_writes_metrics_and_figures(quick_all, name):
    m = metrics(quick_all, name)
    assert set(common.REQUIRED_METRICS) <= set(m)
    assert m["resumed_from_step"] == 0 and m["steps"] > 0 and m["examples_per_s"] > 0
    assert m["config"] == m["config"] | {"seed": 0}
    pngs = list((quick_all / name).glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert not list((quick_all / name).glob(".*.tmp"))  # nothing half-written left behind


def test_report_shows_each_figure_claim_and_numbers(quick_all):
    report = (quick_all / "report.md").read_text()
    for name, module in run.EXPERIMENTS.items():
        assert module.CLAIM in report
        assert f"({name}/{name}.png)" in report
        assert f"| final_loss | {metrics(quick_all, name)['final_loss']:.4g} |" in report


def test_fig4_quick_learns_the_ellipse(quick_all):
    m = metrics(quick_all, "fig4_ellipse")
    assert m["corr_free_energy_true_sqdist"] > 0.98  # F_inf behaves as the squared distance
    assert m["radius_rel_error_max"] < 0.05
    assert m["heldout_free_energy_mean"] < 2 * m["noise_floor"]
    assert m["inner_minus_grid_mean"] < 1e-3  # the inner loop is as good as a 48-angle grid


def test_fig3_quick_both_energies_fit_the_parabola(quick_all):
    m = metrics(quick_all, "fig3_parabola")
    for energy in ("predictor", "contrastive"):
        assert m[f"rmse_{energy}"] < 0.05  # y_hat from infer against x^2 on held-out x
        assert m[f"energy_off_curve_{energy}"] > 10 * m[f"energy_on_curve_{energy}"]


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "hjepa_jax.experiments.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_config_fields_with_defaults():
    res = cli("fig4_ellipse", "--help")
    assert res.returncode == 0
    assert "--inner-steps" in res.stdout and "(default 30)" in res.stdout
    assert "--seed" in res.stdout and "--quick" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fig4_ellipse", "--out", "x", "--bogus", "1"], "unrecognized arguments: --bogus"),
        (["fig4_ellipse", "--out", "x", "--steps", "many"], "invalid int value: 'many'"),
        (["fig9_unknown", "--out", "x"], "invalid choice: 'fig9_unknown'"),
    ],
)
def test_bad_flags_are_refused(args, message):
    res = cli(*args)
    assert res.returncode == 2 and message in res.stderr


def test_flags_override_the_config(tmp_path):
    args = [
        "fig4_ellipse",
        "--out",
        str(tmp_path),
        "--quick",
        "--steps",
        "3",
        "--grid",
        "11",
        "--hidden",
        "8,8",
        "--seed",
        "2",
    ]
    assert run.main(args) == 0
    config = metrics(tmp_path.parent, tmp_path.name)["config"]
    assert config["steps"] == 3 and config["hidden"] == [8, 8] and config["seed"] == 2
    assert config["n_train"] == 256  # untouched fields keep their (quick) defaults


def test_cli_logs_progress(tmp_path):
    """The command line shows what it runs and when it finishes (INFO lines on stderr)."""
    args = ["fig4_ellipse", "--quick", "--steps", "3", "--grid", "11", "--hidden", "8,8"]
    res = cli(*args, "--out", str(tmp_path / "fig4"))
    assert res.returncode == 0, res.stderr
    assert "fig4_ellipse: starting, config" in res.stderr
    assert "fig4_ellipse: done in" in res.stderr


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


def test_methods_landscapes_quick_every_method_learns_the_data(quick_all):
    from hjepa_jax.experiments import methods_landscapes as ml

    m = metrics(quick_all, "methods_landscapes")
    for dataset in ("ellipse", "moons"):
        assert 0.9 < m[f"auc_{dataset}_oracle"] < 1.0  # the ceiling: the true distance
        for method in ml.METHODS:
            assert m[f"auc_{dataset}_{method}"] > 0.55, (dataset, method)  # above chance
    for method in ml.CONTRASTIVE:  # contrastive methods near the ceiling on the ellipse
        assert m[f"auc_ellipse_{method}"] > 0.85, method
    assert m["auc_mean_contrastive"] > 0.8 and m["auc_mean_regularized"] > 0.75


def test_jepa_digits_quick_beats_baselines_and_collapses_without_vicreg(quick_all):
    m = metrics(quick_all, "jepa_digits")
    assert m["probe_acc"] > m["probe_acc_random"] and m["probe_acc"] > m["probe_acc_pixels"]
    assert m["probe_acc"] > m["probe_acc_no_vicreg"] + 0.05
    assert m["embedding_std"] > 50 * m["embedding_std_no_vicreg"]  # the collapse, and its cure
    with np.load(quick_all / "jepa_digits" / "embeddings.npz") as e:
        assert e["train_x"].shape == (1500, 64) and e["test_x"].shape == (297, 64)
        assert e["train_y"].shape == (1500,) and set(np.unique(e["test_y"])) == set(range(10))


@pytest.mark.parametrize("encoder", ["mlp", "conv", "vit"])
def test_jepa_digits_encoders_are_configurable(encoder):
    import jax
    import jax.numpy as jnp

    from hjepa_jax.experiments import jepa_digits

    cfg = jepa_digits.Config(encoder=encoder, embed_dim=8, hidden=(16,))
    model = jepa_digits.Model(cfg, (8, 8, 1))
    params = model.init(jax.random.PRNGKey(0))
    images = jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 1))
    loss, m = model.loss(params, (images, jnp.zeros(4)), jax.random.PRNGKey(2))
    assert jnp.isfinite(loss) and m["embedding_std"] > 0
    with pytest.raises(ValueError, match="encoder must be mlp, conv or vit"):
        jepa_digits.Model(jepa_digits.Config(encoder="resnet"), (8, 8, 1))


def test_planning_critic_tracks_the_path_through_the_door(quick_all):
    """The learned critic ranks tasks by the shortest path; the representation distance does
    not (quick mode measured 0.90 against 0.35)."""
    m = metrics(quick_all, "planning_two_rooms")
    assert m["path_corr_critic"] > 0.8 > m["path_corr_distance"]


def test_planning_reaches_the_other_room_through_the_door(quick_all):
    """Quick mode (fixed wall, 20 episodes) measured CEM 1.00, MPPI 0.80, gradient MPC 0.75
    against 0.00 for random actions; the world model stops at the wall and passes the door."""
    m = metrics(quick_all, "planning_two_rooms")
    best_flat = max(m[f"success_{p}_fixed"] for p in ("gradient_mpc", "cem", "mppi"))
    assert best_flat >= 0.7 > m["success_random_fixed"] + 0.5
    assert m["wall_leak"] <= 0.1 and m["door_pass"] >= 0.9
