"""Paper Figs. 6-8: one 2-D energy, every training method, side by side.

    hjepa-run methods_landscapes --quick --out out/methods_landscapes   # 300 steps per run
    hjepa-run methods_landscapes --out out/methods_landscapes           # 2000 steps per run

Shows that every method the paper names gives low energy on the data and higher energy away
from it, on the noisy ellipse of Fig. 4 and on two moons: contrastive methods by pushing
energy up on contrastive points (hinge E7, square-square E10, NLL with Langevin negatives
E9, InfoNCE), regularized / architectural ones by limiting the volume of low energy
(denoising, sparse coding, K-means, VAE, a VICReg-regularized 1-D code). The methods are
`hjepa_jax.models.methods`.

Metrics per dataset and method: ROC-AUC of -F separating held-out data from uniform points in
the box (`auc_*`; `auc_*_oracle` is that of the true distance to the noise-free curve, the
ceiling, since uniform points that fall on the data cannot be told apart), and the Spearman
correlation between F and the distance to the noise-free curve on a grid (`spearman_*`).
One figure: the learned landscapes, a row per method. Measured numbers: docs/results.md.
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
from hjepa_jax.models.methods import (
    CONTRASTIVE,
    METHODS,
    REGULARIZED,
    Dataset,
    MethodsConfig,
    build,
    ellipse_dataset,
    moons_dataset,
    roc_auc,
    spearman,
    uniform_box,
)

NAME = "methods_landscapes"
TITLE = "Figs. 6-8: contrastive and regularized training methods on the same 2-D data"
CLAIM = (
    "An EBM avoids a flat energy either by pushing energy up on contrastive points (hinge, "
    "square-square, NLL with Langevin samples, InfoNCE) or by limiting the volume of space "
    "that can take low energy (denoising, sparse coding, K-means, VAE, a VICReg-regularized "
    "code); every method gives low energy on the data and higher energy away from it."
)


@config
class Config:
    seed: int = 0
    n_train: Count = 1024
    n_test: Count = 512  # held-out data, and as many uniform points, for the AUC
    moons_noise: NonNegative = 0.05
    hidden: tuple[Count, ...] = (64, 64)  # every MLP
    steps: Count = 2000  # per method and dataset
    batch_size: Count = 128
    learning_rate: Positive = 3e-3
    margin: NonNegative = 1.0  # hinge and square-square
    negative_noise: NonNegative = 0.3  # contrastive points: data + N(0, s^2), half of them
    n_negatives: Count = 8  # K, for NLL and InfoNCE
    langevin_steps: Count = 20
    langevin_step_size: Positive = 0.01
    energy_l2: NonNegative = 0.01  # penalty on F^2 with Langevin negatives
    n_atoms: Count = 32  # sparse coding's dictionary
    l1: NonNegative = 0.1
    ista_steps: Count = 50  # FISTA iterations
    n_centroids: Count = 24
    vae_latent: Count = 2
    vae_beta: NonNegative = 0.05
    code_dim: Count = 1  # the VICReg-regularized auto-encoder's code
    grid: Count = 61
    log_every: Count = 100

    def quick(self) -> Config:
        return dataclasses.replace(self, n_train=512, steps=300, grid=41)

    def model_config(self) -> MethodsConfig:
        """The methods' fields, as `hjepa_jax.models.methods` takes them."""
        names = [f.name for f in dataclasses.fields(MethodsConfig)]
        return MethodsConfig(**{name: getattr(self, name) for name in names})


def datasets(cfg: Config) -> dict[str, Dataset]:
    """The two data sets, in the order of the figure's columns."""
    return {"ellipse": ellipse_dataset(), "moons": moons_dataset(cfg.moons_noise)}


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train every method on every dataset, evaluate and draw. Returns the flat metrics."""
    key = jax.random.PRNGKey(cfg.seed)
    metrics, summaries, panels = {}, [], {}
    for d_index, (d_name, data) in enumerate(datasets(cfg).items()):
        k_train, k_test, k_unif = jax.random.split(jax.random.fold_in(key, d_index), 3)
        train_y = data.sample(k_train, cfg.n_train)
        test_y, unif_y = data.sample(k_test, cfg.n_test), uniform_box(k_unif, cfg.n_test, data.box)
        xs = np.linspace(data.box[0], data.box[1], cfg.grid)
        ys = np.linspace(data.box[2], data.box[3], cfg.grid)
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        dist = np.min(np.sum((grid[:, None] - data.curve[None]) ** 2, -1), -1)
        # The ceiling: the AUC of the true squared distance to the noise-free curve (uniform
        # points that fall on the data cannot be told apart by any energy).
        true_f = lambda y, curve=data.curve: np.min(
            np.sum((np.asarray(y)[:, None] - curve[None]) ** 2, -1), -1
        )
        metrics[f"auc_{d_name}_oracle"] = roc_auc(true_f(test_y), true_f(unif_y))
        for m_index, m_name in enumerate(METHODS):
            method = build(m_name, cfg.model_config(), data)
            k_init, k_run = jax.random.split(jax.random.fold_in(k_train, m_index))
            res = hj.train.train(
                method.loss,
                method.init(k_init),
                optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
                train_y,
                loop=options.loop(cfg, out, model=f"{d_name}_{m_name}"),
                key=k_run,
                config=dataclasses.asdict(cfg),
                desc=f"{NAME}/{d_name}/{m_name}",
            )
            summaries.append(res.summary)
            f = jax.jit(jax.vmap(method.energy, (None, 0)))  # one call: one compile
            points = jnp.concatenate([test_y, unif_y, jnp.asarray(grid, jnp.float32)])
            f_all = np.asarray(f(res.state.params, points))
            f_test, f_unif, f_grid = np.split(f_all, [len(test_y), len(test_y) + len(unif_y)])
            metrics[f"auc_{d_name}_{m_name}"] = roc_auc(f_test, f_unif)
            metrics[f"spearman_{d_name}_{m_name}"] = spearman(f_grid, dist)
            panels[d_name, m_name] = f_grid.reshape(cfg.grid, cfg.grid)
        panels[d_name] = (xs, ys, np.asarray(train_y))
    for group, names in (("contrastive", CONTRASTIVE), ("regularized", REGULARIZED)):
        aucs = [
            v for k, v in metrics.items() if k.startswith("auc_") and k.split("_", 2)[2] in names
        ]
        metrics[f"auc_mean_{group}"] = float(np.mean(aucs))
    metrics.update(
        combined_summary(
            summaries, cfg.batch_size, float(np.mean([s["final_loss"] for s in summaries]))
        )
    )  # mean over runs
    draw(cfg, out / f"{NAME}.png", panels, metrics)
    return metrics


@on_process_0
def draw(cfg, path, panels, metrics) -> None:
    names = list(datasets(cfg))
    fig, axes = plt.subplots(
        len(METHODS), len(names), figsize=(4.2 * len(names), 2.6 * len(METHODS))
    )
    for row, m_name in enumerate(METHODS):
        for col, d_name in enumerate(names):
            ax = axes[row, col]
            xs, ys, train_y = panels[d_name]
            f = panels[d_name, m_name]
            norm = colors.PowerNorm(0.5, vmin=f.min(), vmax=np.quantile(f, 0.98))
            ax.pcolormesh(xs, ys, f, cmap="viridis", shading="auto", norm=norm)
            ax.scatter(*train_y[:300].T, s=1.5, c="w", alpha=0.7)
            auc = metrics[f"auc_{d_name}_{m_name}"]
            ax.set_title(f"{m_name} / {d_name}: AUC {auc:.3f}", fontsize=9)
            ax.set(xticks=[], yticks=[], aspect="equal")
    fig.suptitle(
        f"{TITLE}\n(seed {cfg.seed}, {cfg.steps} steps per method; brighter = higher F)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    save_figure(fig, path)
