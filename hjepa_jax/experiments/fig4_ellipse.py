"""Paper Fig. 4b: a latent-variable EBM learns an ellipse; the latent z is an angle.

    hjepa-run fig4_ellipse --quick --out out/fig4_ellipse   # 500 steps, seconds
    hjepa-run fig4_ellipse --out out/fig4_ellipse           # 3000 steps, the README figure

Shows that E(y, z) = ||y - Dec_w(z)||^2, with a 1-D angular latent z and nothing pushing
energy up, learns from noisy ellipse points a free energy F_inf(y) = min_z E(y, z) that
behaves like the squared distance to the ellipse: the 1-D latent is the architectural limit
on the volume of low energy (paper Sec. 4). The model is `hjepa_jax.models.ellipse`.

Figure: the training points, the learned ellipse, the closest point Dec(z_hat) for a few
off-ellipse points, the F_inf heat map, and the cross-section at y1 = 0 of F_beta for
beta in {0.1, 0.3, 1, 3.2, 10, inf} (`soft_min` over 48 angles). Measured numbers:
docs/results.md.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import hjepa_jax as hj
from hjepa_jax.experiments.common import (
    Count,
    NonNegative,
    Positive,
    RunOptions,
    config,
    on_process_0,
    save_figure,
)
from hjepa_jax.models.ellipse import (
    EllipseConfig,
    EllipseModel,
    ellipse_points,
    true_squared_distance,
)

NAME = "fig4_ellipse"
TITLE = "Fig. 4b: a latent-variable EBM learns an ellipse"
CLAIM = (
    "With a latent angle z, E(y, z) = ||y - Dec(z)||^2 learned from points on an ellipse gives "
    "a free energy F_inf(y) = min_z E that behaves like the squared distance to the ellipse; "
    "z_hat is the angle of the closest point, and the finite-temperature F_beta smooths the "
    "landscape as beta decreases, approaching F_inf as beta grows."
)
BETAS = (0.1, 0.3, 1.0, 3.2, 10.0, math.inf)
OFF_ELLIPSE = ((2.7, 1.1), (-0.4, 0.3), (0.3, -1.9), (-2.8, -0.6), (1.1, 0.4), (-1.3, 1.8))


@config
class Config:
    seed: int = 0
    n_train: Count = 1024  # noisy ellipse points (the course uses 24; more are fine)
    n_test: Count = 256  # held-out ellipse points
    radius_1: Positive = 2.0
    radius_2: Positive = 1.5
    noise: NonNegative = 0.05  # std per axis, 1/20
    hidden: tuple[Count, ...] = (64, 64)  # decoder MLP widths before the 2-D output
    steps: Count = 3000
    batch_size: Count = 128
    learning_rate: Positive = 3e-3
    n_starts: Count = 8  # starting angles of the inner loop
    inner_steps: Count = 30
    inner_lr: Positive = 0.05
    grad: Literal["envelope", "unroll"] = (
        "envelope"  # gradient through the inner loop: "envelope" (E5) or "unroll"
    )
    n_angles: Count = 48  # z grid of the marginal free energy F_beta
    grid: Count = 121  # heat map resolution along y1
    log_every: Count = 100

    def quick(self) -> Config:
        return dataclasses.replace(self, n_train=256, steps=500, grid=61)

    def model_config(self) -> EllipseConfig:
        """The data and model fields, as `hjepa_jax.models.ellipse` takes them."""
        names = [f.name for f in dataclasses.fields(EllipseConfig)]
        return EllipseConfig(**{name: getattr(self, name) for name in names})


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train, evaluate and draw. Returns the flat metrics (without config)."""
    k_data, k_test, k_init, k_train = jax.random.split(jax.random.PRNGKey(cfg.seed), 4)
    ell = cfg.model_config()
    train_y = ellipse_points(k_data, cfg.n_train, ell)
    test_y = ellipse_points(k_test, cfg.n_test, ell)
    model = EllipseModel(ell)
    result = hj.train.train(
        model.loss,
        model.init(k_init),
        optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
        train_y,
        loop=options.loop(cfg, out),
        key=k_train,
        config=dataclasses.asdict(cfg),
        desc=NAME,
    )
    params = result.state.params

    # Heat map of F_inf on y1 in [-3, 3], y2 in [-2, 2], against the true squared distance.
    y1 = np.linspace(-3, 3, cfg.grid)
    y2 = np.linspace(-2, 2, int(cfg.grid * 2 / 3) | 1)
    grid = jnp.asarray(np.stack(np.meshgrid(y1, y2), -1).reshape(-1, 2), jnp.float32)
    f_grid = np.asarray(model.f_inf(params, grid).energy)
    d_grid = np.asarray(true_squared_distance(grid, ell))
    f_grid_search = np.asarray(model.f_beta(params, grid, math.inf))  # min over 48 angles

    # The learned curve and its radii (half extents along each axis).
    dense = jnp.linspace(0, 2 * jnp.pi, 1024)[:, None]
    curve = np.asarray(jax.vmap(lambda z: model.decode(params, z))(dense))
    radii = (np.ptp(curve[:, 0]) / 2, np.ptp(curve[:, 1]) / 2)

    off = jnp.asarray(OFF_ELLIPSE, jnp.float32)
    off_res = model.f_inf(params, off)
    closest = np.asarray(jax.vmap(lambda z: model.decode(params, z))(off_res.z))

    section = jnp.stack([jnp.zeros(201), jnp.linspace(-2, 2, 201)], -1)
    f_betas = {beta: np.asarray(model.f_beta(params, section, beta)) for beta in BETAS}

    metrics = dict(result.summary)
    metrics.update(
        corr_free_energy_true_sqdist=float(np.corrcoef(f_grid, d_grid)[0, 1]),
        heldout_free_energy_mean=float(jnp.mean(model.f_inf(params, test_y).energy)),
        train_free_energy_mean=float(jnp.mean(model.f_inf(params, train_y).energy)),
        noise_floor=cfg.noise**2,  # E[squared normal offset] of a noisy point
        fitted_radius_1=float(radii[0]),
        fitted_radius_2=float(radii[1]),
        radius_rel_error_max=float(
            max(abs(radii[0] / cfg.radius_1 - 1), abs(radii[1] / cfg.radius_2 - 1))
        ),
        # How far the inner gradient loop stays above a brute-force min over 48 angles
        # (negative: the loop found a lower point than the coarse grid).
        inner_minus_grid_mean=float(np.mean(f_grid - f_grid_search)),
    )

    draw(cfg, out / f"{NAME}.png", train_y, curve, off, closest, y1, y2, f_grid, f_betas)
    return metrics


@on_process_0
def draw(cfg, path, train_y, curve, off, closest, y1, y2, f_grid, f_betas) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    axes = axes.ravel()
    ax = axes[0]
    ax.scatter(*np.asarray(train_y).T, s=6, c="tab:blue", label="training points")
    ax.plot(*curve.T, c="tab:red", lw=2, label="learned ellipse Dec(z)")
    for p, q in zip(np.asarray(off), closest, strict=True):
        ax.plot([p[0], q[0]], [p[1], q[1]], c="k", lw=1)
    ax.scatter(*np.asarray(off).T, marker="x", c="k", label="y off the ellipse")
    ax.scatter(*closest.T, s=20, c="orange", zorder=3, label="Dec(z_hat), z_hat = argmin_z E")
    ax.set(aspect="equal", xlim=(-3, 3), ylim=(-2, 2), title="data, model and latent inference")
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[1]
    mesh = ax.pcolormesh(y1, y2, f_grid.reshape(len(y2), len(y1)), cmap="viridis", shading="auto")
    ax.contour(y1, y2, f_grid.reshape(len(y2), len(y1)), levels=[0.05, 0.25, 1, 2], colors="w")
    ax.plot(*curve.T, c="tab:red", lw=1)
    fig.colorbar(mesh, ax=ax, label="F_inf(y)")
    ax.set(aspect="equal", title="free energy F_inf(y) = min_z E(y, z)", xlabel="y1", ylabel="y2")

    ys = np.linspace(-2, 2, 201)
    for beta, f in f_betas.items():
        axes[2].plot(ys, f, label=f"beta = {beta:g}")
        axes[3].plot(ys, f - f.min(), label=f"beta = {beta:g}")
    axes[2].set(xlabel="y2 (y1 = 0)", ylabel="F_beta", title="F_beta(0, y2), sum over 48 angles")
    axes[3].set(
        xlabel="y2 (y1 = 0)",
        ylabel="F_beta - min F_beta",
        title="the same, shifted: smaller beta is smoother",
    )
    axes[2].legend(fontsize=8)
    fig.suptitle(f"{TITLE} (seed {cfg.seed}, {cfg.steps} steps)")
    fig.tight_layout()
    save_figure(fig, path)
