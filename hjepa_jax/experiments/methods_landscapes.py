"""Paper Figs. 6-8: one 2-D energy, every training method, side by side.

    python -m hjepa_jax.experiments.run methods_landscapes --out out/methods_landscapes [--quick]

The same kind of model is trained on the same toy data (the noisy ellipse of Fig. 4 and two
moons) with each method the paper names. Contrastive methods push F down on data and up on
contrastive points; regularized / architectural methods limit the volume of low energy:

  contrastive:  hinge (E7), square-square (E10), NLL with Langevin negatives (E9),
                InfoNCE (softmax over one positive and K uniform negatives);
  regularized:  denoising auto-encoder, sparse coding (unit-norm atoms, an L1-sparse code
                found by FISTA in the inner loop), K-means (one-hot latent), VAE (noisy
                latent + KL),
                an auto-encoder with a 1-D code kept informative by VICReg's variance and
                covariance terms.

Metrics per dataset and method: ROC-AUC of -F separating held-out data from uniform points in
the box (`auc_*`; `auc_*_oracle` is that of the true distance to the noise-free curve, the
ceiling, since uniform points that fall on the data cannot be told apart), and the Spearman
correlation between F and the distance to the noise-free curve on a grid (`spearman_*`).
One figure: the learned landscapes, a row per method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from matplotlib import colors

import hjepa_jax as hj
from hjepa_jax.experiments import fig4_ellipse
from hjepa_jax.experiments.common import (
    Count,
    NonNegative,
    Positive,
    RunOptions,
    combined_summary,
    config,
    save_figure,
)

NAME = "methods_landscapes"
TITLE = "Figs. 6-8: contrastive and regularized training methods on the same 2-D data"
CLAIM = (
    "An EBM avoids a flat energy either by pushing energy up on contrastive points (hinge, "
    "square-square, NLL with Langevin samples, InfoNCE) or by limiting the volume of space "
    "that can take low energy (denoising, sparse coding, K-means, VAE, a VICReg-regularized "
    "code); every method gives low energy on the data and higher energy away from it."
)
CONTRASTIVE = ("hinge", "square_square", "nll_langevin", "infonce")
REGULARIZED = ("denoising", "sparse_coding", "kmeans", "vae", "vicreg_code")
METHODS = CONTRASTIVE + REGULARIZED


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


# ---- data ----


class Dataset(NamedTuple):
    sample: Callable  # (key, n) -> [n, 2]
    box: tuple[float, float, float, float]  # x0, x1, y0, y1
    curve: np.ndarray  # [M, 2] dense points of the noise-free manifold


def datasets(cfg: Config) -> dict[str, Dataset]:
    ell = fig4_ellipse.Config()
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    ellipse_curve = np.stack([ell.radius_1 * np.cos(t), ell.radius_2 * np.sin(t)], -1)
    u = np.linspace(0, np.pi, 1000)
    moons_curve = np.concatenate(
        [np.stack([np.cos(u), np.sin(u)], -1), np.stack([1 - np.cos(u), 0.5 - np.sin(u)], -1)]
    )

    def moons(key, n):
        k_t, k_m, k_e = jax.random.split(key, 3)
        t = jax.random.uniform(k_t, (n,), maxval=jnp.pi)
        upper = jnp.stack([jnp.cos(t), jnp.sin(t)], -1)
        lower = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], -1)
        pick = jax.random.bernoulli(k_m, 0.5, (n, 1))
        return jnp.where(pick, upper, lower) + cfg.moons_noise * jax.random.normal(k_e, (n, 2))

    return {
        "ellipse": Dataset(
            lambda k, n: fig4_ellipse.ellipse_points(k, n, ell),
            (-3.0, 3.0, -2.0, 2.0),
            ellipse_curve,
        ),
        "moons": Dataset(moons, (-1.5, 2.5, -1.0, 1.5), moons_curve),
    }


def uniform_box(key: jax.Array, n: int, box) -> jax.Array:
    """[n, 2] uniform points in the box."""
    low, high = jnp.array([box[0], box[2]]), jnp.array([box[1], box[3]])
    return jax.random.uniform(key, (n, 2), minval=low, maxval=high)


# ---- methods: each an (init, loss, energy) triple over the same kind of 2-D model ----


class Method(NamedTuple):
    init: Callable  # key -> params
    loss: Callable  # (params, batch [B, 2], key) -> (loss, aux)
    energy: Callable  # (params, y [2]) -> []: the free energy whose landscape is drawn


def mlp(features) -> tuple[Callable, Callable]:
    net = hj.nn.MLP(tuple(features))
    return net.apply, lambda key, dim: net.init(key, jnp.zeros(dim))


def contrastive_method(name: str, cfg: Config, data: Dataset) -> Method:
    """F(y) = softplus(MLP(y)) >= 0, trained with a contrastive loss."""
    box = data.box
    apply, init = mlp((*cfg.hidden, 1))
    energy = lambda p, y: jax.nn.softplus(apply(p, y)[0])
    batch_energy = jax.vmap(energy, (None, 0))

    def corrupted(key, y):
        """Half uniform in the box, half data + noise: points that should have high F."""
        k_u, k_n = jax.random.split(key)
        near = hj.sampling.corrupt_noise(k_n, y, cfg.negative_noise)
        return jnp.where(jnp.arange(len(y))[:, None] % 2 == 0, near, uniform_box(k_u, len(y), box))

    def loss(params, y, key):
        b, k = y.shape[0], cfg.n_negatives
        f_pos = batch_energy(params, y)
        if name in ("hinge", "square_square"):
            f_neg = batch_energy(params, corrupted(key, y))
            fn = hj.losses.hinge if name == "hinge" else hj.losses.square_square
            return fn(f_pos, f_neg, cfg.margin), {"f_pos": f_pos.mean(), "f_neg": f_neg.mean()}
        if name == "infonce":
            negs = uniform_box(key, b * k, box)
            f_negs = batch_energy(params, negs).reshape(b, k)
            logits = -jnp.concatenate([f_pos[:, None], f_negs], axis=1)
            labels = jnp.zeros(b, jnp.int32)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            return jnp.mean(ce), {"f_pos": f_pos.mean(), "f_neg": f_negs.mean()}
        # nll_langevin: K chains per example from uniform noise, Langevin on the current F.
        k_start, k_chain = jax.random.split(key)
        starts = uniform_box(k_start, b * k, box)
        frozen = jax.lax.stop_gradient(params)
        sample = lambda y0, kk: (
            hj.sampling.langevin_sample(
                energy,
                frozen,
                y0,
                key=kk,
                steps=cfg.langevin_steps,
                step_size=cfg.langevin_step_size,
                bounds=(min(box), max(box)),
            ).z
        )
        negs = jax.vmap(sample)(starts, jax.random.split(k_chain, b * k))
        f_negs = batch_energy(params, negs).reshape(b, k)
        nll = hj.losses.nll(f_pos, f_negs, 1.0)
        reg = cfg.energy_l2 * hj.sampling.energy_l2(f_pos, f_negs.reshape(-1))
        return nll + reg, {"f_pos": f_pos.mean(), "f_neg": f_negs.mean()}

    return Method(lambda key: init(key, 2), loss, energy)


def denoising_method(cfg: Config, data: Dataset) -> Method:
    """Denoising auto-encoder: r(y~) reconstructs y from y~ = y + noise; F(y) = ||y - r(y)||^2."""
    del data
    apply, init = mlp((*cfg.hidden, 2))
    energy = lambda p, y: jnp.sum((y - apply(p, y)) ** 2)

    def loss(params, y, key):
        noisy = hj.sampling.corrupt_noise(key, y, cfg.negative_noise)
        return jnp.mean(jnp.sum((y - apply(params, noisy)) ** 2, -1)), {}

    return Method(lambda key: init(key, 2), loss, energy)


def sparse_coding_method(cfg: Config, data: Dataset) -> Method:
    """Sparse coding (E11): E(u, z) = ||u - W z||^2 + l1 |z|_1 with unit-norm atoms W.

    The point is written as a unit vector u = [y, 1] / ||[y, 1]|| (a direction of R^3, one
    per point of the plane), so every atom stands for a point of the plane and a cheap code
    (sparse, small L1) reaches points near one atom or between two neighbouring ones.
    F(y) = min_z E by FISTA (`hj.losses.sparse_code`, step 1 / L from W).
    """

    def atoms(v):
        return v / jnp.linalg.norm(v, axis=0, keepdims=True)

    def lift(y):
        u = jnp.append(y, 1.0)
        return u / jnp.linalg.norm(u)

    def energy(v, y):
        return hj.losses.sparse_code(atoms(v), lift(y), cfg.l1, steps=cfg.ista_steps).energy

    def loss(v, y, key):
        del key
        return jnp.mean(jax.vmap(energy, (None, 0))(v, y)), {}

    def init(key):  # atoms at random data points
        return jax.vmap(lift)(data.sample(key, cfg.n_atoms)).T  # [3, K]

    return Method(init, loss, energy)


def kmeans_method(cfg: Config, data: Dataset) -> Method:
    """K-means (E11): F(y) = squared distance to the nearest of K learned centroids."""
    energy = lambda c, y: hj.losses.kmeans_free_energy(c, y)[0]

    def loss(centroids, y, key):
        del key
        return jnp.mean(jax.vmap(energy, (None, 0))(centroids, y)), {}

    # Centroids start at random data points (as k-means++ seeds do), so none starts dead.
    return Method(lambda key: data.sample(key, cfg.n_centroids), loss, energy)


def vae_method(cfg: Config, data: Dataset) -> Method:
    """VAE (E11): ||y - Dec(z)||^2 + beta KL, z = mean + std * noise from Enc(y)."""
    del data
    enc_apply, enc_init = mlp((*cfg.hidden, 2 * cfg.vae_latent))
    dec_apply, dec_init = mlp((*cfg.hidden, 2))

    def posterior(params, y):
        out = enc_apply(params["enc"], y)
        return out[: cfg.vae_latent], out[cfg.vae_latent :]

    def energy(params, y):  # the noise-free free energy: the mean code, plus the KL
        mean, log_var = posterior(params, y)
        recon = jnp.sum((y - dec_apply(params["dec"], mean)) ** 2)
        return recon + cfg.vae_beta * hj.losses.gaussian_kl(mean, log_var)

    def loss(params, y, key):
        def one(y, k):
            mean, log_var = posterior(params, y)
            return hj.losses.vae_energy(
                lambda p, z: dec_apply(p, z), params["dec"], mean, log_var, y, k, cfg.vae_beta
            )

        return jnp.mean(jax.vmap(one)(y, jax.random.split(key, len(y)))), {}

    init = lambda key: {
        "enc": enc_init(jax.random.fold_in(key, 0), 2),
        "dec": dec_init(jax.random.fold_in(key, 1), cfg.vae_latent),
    }
    return Method(init, loss, energy)


def vicreg_code_method(cfg: Config, data: Dataset) -> Method:
    """Auto-encoder with a `code_dim` code; VICReg's variance and covariance terms on the
    batch of codes keep it informative. F(y) = ||y - Dec(Enc(y))||^2."""
    del data
    enc_apply, enc_init = mlp((*cfg.hidden, cfg.code_dim))
    dec_apply, dec_init = mlp((*cfg.hidden, 2))
    energy = lambda p, y: jnp.sum((y - dec_apply(p["dec"], enc_apply(p["enc"], y))) ** 2)

    def loss(params, y, key):
        del key
        codes = jax.vmap(enc_apply, (None, 0))(params["enc"], y)
        recon = jnp.mean(jax.vmap(energy, (None, 0))(params, y))
        _, terms = hj.losses.vicreg(codes, codes)
        return recon + terms["variance"] + terms["covariance"], terms

    init = lambda key: {
        "enc": enc_init(jax.random.fold_in(key, 0), 2),
        "dec": dec_init(jax.random.fold_in(key, 1), cfg.code_dim),
    }
    return Method(init, loss, energy)


def build(name: str, cfg: Config, data: Dataset) -> Method:
    if name in CONTRASTIVE:
        return contrastive_method(name, cfg, data)
    makers = {
        "denoising": denoising_method,
        "sparse_coding": sparse_coding_method,
        "kmeans": kmeans_method,
        "vae": vae_method,
        "vicreg_code": vicreg_code_method,
    }
    return makers[name](cfg, data)


# ---- evaluation ----


def roc_auc(low: np.ndarray, high: np.ndarray) -> float:
    """P(energy of a data point < energy of a uniform point), ties counting half."""
    low, high = low[:, None], high[None, :]
    return float(np.mean((low < high) + 0.5 * (low == high)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank = lambda v: np.argsort(np.argsort(v))
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


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
            method = build(m_name, cfg, data)
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
            f = jax.jit(jax.vmap(method.energy, (None, 0)))
            params = res.state.params
            f_test, f_unif = np.asarray(f(params, test_y)), np.asarray(f(params, unif_y))
            f_grid = np.asarray(f(params, jnp.asarray(grid, jnp.float32)))
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
