"""Paper Fig. 3b: an energy landscape learned from points on y = x^2, and inference on it.

    hjepa-run fig3_parabola --quick --out out/fig3_parabola   # 700 steps per energy, seconds
    hjepa-run fig3_parabola --out out/fig3_parabola           # 3000 steps per energy

Shows that an EBM trained on pairs (x, x^2) gives low energy on the data and higher energy
away from it, that inference y_hat = argmin_y F(x, y) recovers x^2, and that the energy is
not unique given the data.

Two energies are learned from the same pairs (x, x^2 + noise), x in [-1, 1]:
  predictor:   F_w(x, y) = (y - Pred_w(x))^2, Pred_w an MLP (the architecture of Fig. 5a),
               trained by lowering F on data (energy loss, E6: it cannot collapse);
  contrastive: F_w(x, y) = softplus(MLP_w(x, y)), a general energy, trained with the
               square-square loss (E10) against contrastive y_bar = y shifted up or down.
Both fit the data, yet their landscapes differ away from it: the energy is not unique given
the data (the caption's point). y_hat(x) = argmin_y F(x, y) comes from `hj.latent.infer`
with several starting y (the lowest kept). Measured numbers: docs/results.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from matplotlib import colors

import hjepa_jax as hj
from hjepa_jax.experiments.common import (
    Count,
    NonNegative,
    Positive,
    RunOptions,
    combined_summary,
    config,
    on_process_0,
    save_figure,
)
from hjepa_jax.models import _common

NAME = "fig3_parabola"
TITLE = "Fig. 3b: an energy landscape learned from y = x^2"
CLAIM = (
    "An EBM trained on pairs (x, y = x^2) gives low energy on the data manifold and higher "
    "energy away from it; inference y_hat = argmin_y F(x, y) recovers x^2. The energy "
    "function is not unique: different energies (a deterministic predictor, a general "
    "contrastively trained energy) fit the same data with different landscapes."
)


@config
class Config:
    seed: int = 0
    n_train: Count = 512
    n_test: Count = 256
    noise: NonNegative = 0.03  # std of y around x^2
    hidden: tuple[Count, ...] = (64, 64)  # MLP widths of both energies
    steps: Count = 3000  # per energy
    batch_size: Count = 128
    learning_rate: Positive = 3e-3
    margin: NonNegative = 1.0  # square-square margin m
    shift_min: NonNegative = 0.15  # contrastive y_bar = y +- U(shift_min, shift_max)
    shift_max: Positive = 1.2
    infer_steps: Count = 200
    infer_lr: Positive = 0.05  # Adam with cosine decay on y
    n_starts: Count = 5  # starting y in [-0.5, 1.5]
    off_curve: Positive = 0.5  # distance of the "off the curve" energy probe
    grid: Count = 121
    log_every: Count = 100

    def quick(self) -> Config:
        return dataclasses.replace(self, steps=700, infer_steps=100, grid=61)


def parabola(key: jax.Array, n: int, noise: float) -> tuple[jax.Array, jax.Array]:
    """x: [n, 1] uniform in [-1, 1]; y: [n, 1] = x^2 + N(0, noise^2)."""
    k_x, k_e = jax.random.split(key)
    x = jax.random.uniform(k_x, (n, 1), minval=-1.0, maxval=1.0)
    return x, x**2 + noise * jax.random.normal(k_e, (n, 1))


class Energies:
    """The two energies F(params, y, x) -> [] and their training losses."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.pred_net = hj.nn.MLP((*cfg.hidden, 1))
        self.joint_net = hj.nn.MLP((*cfg.hidden, 1))
        pred = lambda params, x: _common.apply(self.pred_net, params, x)  # params' dtype
        self.predictor = hj.energies.predictor_energy(pred)

    def contrastive(self, params, y, x):
        """General energy F(x, y) = softplus(MLP([x, y])) >= 0. y, x: [1] -> []."""
        out = _common.apply(self.joint_net, params, jnp.concatenate([x, y]))
        return jax.nn.softplus(out[0])

    def predictor_loss(self, params, batch, key):
        """Energy loss (E6): mean F(x, y) over data pairs."""
        del key
        x, y = batch
        return jnp.mean(jax.vmap(self.predictor, (None, 0, 0))(params, y, x)), {}

    def contrastive_loss(self, params, batch, key):
        """Square-square (E10) with y_bar = y +- U(shift_min, shift_max) (data corruption)."""
        x, y = batch
        k_sign, k_size = jax.random.split(key)
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, y.shape), 1.0, -1.0)
        size = jax.random.uniform(
            k_size, y.shape, minval=self.cfg.shift_min, maxval=self.cfg.shift_max
        )
        f = jax.vmap(self.contrastive, (None, 0, 0))
        f_pos, f_neg = f(params, y, x), f(params, y + sign * size, x)
        loss = hj.losses.square_square(f_pos, f_neg, self.cfg.margin)
        return loss, {"f_pos": jnp.mean(f_pos), "f_neg": jnp.mean(f_neg)}

    def infer(self, free_energy, params, xs: jax.Array) -> jax.Array:
        """[N, 1] -> y_hat [N, 1] = argmin_y F(x, y), best of n_starts starting values."""
        cfg = self.cfg
        starts = jnp.linspace(-0.5, 1.5, cfg.n_starts)[:, None]
        opt = optax.adam(optax.cosine_decay_schedule(cfg.infer_lr, cfg.infer_steps))

        def one(x):
            run = lambda y0: hj.latent.infer(
                free_energy, params, y0, x, steps=cfg.infer_steps, optimizer=opt
            )
            return hj.latent.lowest(jax.vmap(run)(starts)).z

        return jax.jit(jax.vmap(one))(xs)


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train both energies, infer, evaluate and draw. Returns the flat metrics."""
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), 6)
    x_train, y_train = parabola(keys[0], cfg.n_train, cfg.noise)
    x_test = jnp.linspace(-1.0, 1.0, cfg.n_test)[:, None]
    model = Energies(cfg)
    runs = {}
    for name, net, in_dim, loss, key in (
        ("predictor", model.pred_net, 1, model.predictor_loss, keys[1]),
        ("contrastive", model.joint_net, 2, model.contrastive_loss, keys[2]),
    ):
        runs[name] = hj.train.train(
            loss,
            jax.jit(net.init)(key, jnp.zeros(in_dim)),
            optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
            (x_train, y_train),
            loop=options.loop(cfg, out, model=name),
            key=keys[3],
            config=dataclasses.asdict(cfg),
            desc=f"{NAME}/{name}",
        )
    energies = {"predictor": model.predictor, "contrastive": model.contrastive}

    xs = np.linspace(-1.2, 1.2, cfg.grid)
    ys = np.linspace(-0.6, 1.6, cfg.grid)
    gx, gy = (jnp.asarray(a.reshape(-1, 1), jnp.float32) for a in np.meshgrid(xs, ys))
    metrics, panels = {}, {}
    for name, free_energy in energies.items():
        params = runs[name].state.params
        f = jax.jit(jax.vmap(free_energy, (None, 0, 0)))
        y_hat = model.infer(free_energy, params, x_test)
        curve = x_test**2
        metrics[f"rmse_{name}"] = float(jnp.sqrt(jnp.mean((y_hat - curve) ** 2)))
        metrics[f"energy_on_curve_{name}"] = float(jnp.mean(f(params, curve, x_test)))
        off = jnp.concatenate(
            [f(params, curve + cfg.off_curve, x_test), f(params, curve - cfg.off_curve, x_test)]
        )
        metrics[f"energy_off_curve_{name}"] = float(jnp.mean(off))
        metrics[f"final_loss_{name}"] = runs[name].summary["final_loss"]
        panels[name] = (
            np.asarray(f(params, gy, gx)).reshape(cfg.grid, cfg.grid),
            np.asarray(y_hat),
        )

    summaries = [r.summary for r in runs.values()]
    metrics.update(
        combined_summary(summaries, cfg.batch_size, runs["predictor"].summary["final_loss"])
    )  # the caption's energy
    draw(cfg, out / f"{NAME}.png", xs, ys, x_train, y_train, x_test, panels)
    return metrics


@on_process_0
def draw(cfg, path, xs, ys, x_train, y_train, x_test, panels) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    titles = {
        "predictor": "F(x, y) = (y - Pred(x))^2, energy loss",
        "contrastive": "F(x, y) = softplus(MLP(x, y)), square-square loss",
    }
    for ax, (name, (f_grid, y_hat)) in zip(axes, panels.items(), strict=True):
        norm = colors.PowerNorm(0.5, vmin=0.0, vmax=np.quantile(f_grid, 0.98))
        mesh = ax.pcolormesh(xs, ys, f_grid, cmap="viridis", shading="auto", norm=norm)
        fig.colorbar(mesh, ax=ax, label="F(x, y)")
        ax.scatter(
            np.asarray(x_train), np.asarray(y_train), s=4, c="w", alpha=0.6, label="training pairs"
        )
        ax.plot(np.asarray(x_test), np.asarray(x_test) ** 2, "k--", lw=1, label="y = x^2")
        ax.plot(np.asarray(x_test), y_hat, c="tab:red", lw=2, label="y_hat = argmin_y F (infer)")
        ax.set(title=titles[name], xlabel="x", ylabel="y")
        ax.legend(fontsize=7, loc="upper center")
    fig.suptitle(f"{TITLE} (seed {cfg.seed}, {cfg.steps} steps each)")
    fig.tight_layout()
    save_figure(fig, path)
