"""One 2-D energy per training method of paper Figs. 6-8, and the toy data they learn.

Each method is a `Method(init, loss, energy)` over points y [2] of the plane, ready for
`hj.train.train(method.loss, method.init(key), ...)`; `method.energy(params, y)` is the free
energy F(y) whose landscape is drawn. Contrastive methods push F down on data and up on
contrastive points; regularized / architectural ones limit the volume of low energy:

  contrastive:  hinge (E7), square-square (E10), NLL with Langevin negatives (E9), InfoNCE
                (softmax over one positive and K uniform negatives), on F = softplus(MLP(y));
  regularized:  denoising auto-encoder, sparse coding (unit-norm atoms, an L1-sparse code
                found by FISTA in the inner loop), K-means (one-hot latent), VAE (noisy latent
                + KL), an auto-encoder with a small code kept informative by VICReg's variance
                and covariance terms.

    >>> import jax
    >>> from hjepa_jax.models import methods
    >>> data = methods.moons_dataset(noise=0.05)
    >>> method = methods.build("kmeans", methods.MethodsConfig(n_centroids=4), data)
    >>> centroids = method.init(jax.random.PRNGKey(0))
    >>> centroids.shape, method.energy(centroids, jax.numpy.zeros(2)).shape
    ((4, 2), ())
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hjepa_jax import _checks, losses, sampling
from hjepa_jax import nn as hj_nn
from hjepa_jax.models import _common
from hjepa_jax.models.ellipse import EllipseConfig, ellipse_points

__all__ = [
    "CONTRASTIVE",
    "METHODS",
    "REGULARIZED",
    "Dataset",
    "Method",
    "MethodsConfig",
    "build",
    "contrastive_method",
    "denoising_method",
    "ellipse_dataset",
    "kmeans_method",
    "moons_dataset",
    "roc_auc",
    "sparse_coding_method",
    "spearman",
    "uniform_box",
    "vae_method",
    "vicreg_code_method",
]

CONTRASTIVE = ("hinge", "square_square", "nll_langevin", "infonce")
REGULARIZED = ("denoising", "sparse_coding", "kmeans", "vae", "vicreg_code")
METHODS = CONTRASTIVE + REGULARIZED


@dataclasses.dataclass(frozen=True)
class MethodsConfig:
    """What the methods read: widths, contrastive points, and each method's own sizes.

    Attributes:
      hidden: widths of every MLP before its output.
      margin: hinge and square-square margin.
      negative_noise: contrastive points are data + N(0, s^2) (half of them; the others are
        uniform in the box), and the denoising auto-encoder's corruption.
      n_negatives: K contrastive points per example, for NLL and InfoNCE.
      langevin_steps, langevin_step_size: the Langevin chains of NLL's negatives.
      energy_l2: penalty on F^2 with Langevin negatives.
      n_atoms, l1, ista_steps: sparse coding's dictionary size, L1 weight and FISTA steps.
      n_centroids: K-means's K.
      vae_latent, vae_beta: the VAE's latent size and KL weight.
      code_dim: the VICReg-regularized auto-encoder's code size.

    Raises:
      ValueError: a field out of its range, naming it.
    """

    hidden: tuple[int, ...] = (64, 64)
    margin: float = 1.0
    negative_noise: float = 0.3
    n_negatives: int = 8
    langevin_steps: int = 20
    langevin_step_size: float = 0.01
    energy_l2: float = 0.01
    n_atoms: int = 32
    l1: float = 0.1
    ista_steps: int = 50
    n_centroids: int = 24
    vae_latent: int = 2
    vae_beta: float = 0.05
    code_dim: int = 1

    def __post_init__(self):
        fn, fix = "MethodsConfig", "see MethodsConfig's attributes"
        object.__setattr__(self, "hidden", _common.widths(fn, "hidden", self.hidden, fix))
        counts = ("n_negatives", "langevin_steps", "n_atoms", "ista_steps", "n_centroids")
        _common.counts(fn, self, (*counts, "vae_latent", "code_dim"), fix)
        _common.positives(fn, self, ("langevin_step_size",), fix)
        weights = ("margin", "negative_noise", "energy_l2", "l1", "vae_beta")
        _common.non_negatives(fn, self, weights, fix)


# ---- data ----


class Dataset(NamedTuple):
    """A toy data set of the plane."""

    sample: Callable  # (key, n) -> [n, 2]
    box: tuple[float, float, float, float]  # x0, x1, y0, y1: where the landscape is drawn
    curve: np.ndarray  # [M, 2] dense points of the noise-free manifold


def ellipse_dataset(cfg: EllipseConfig | None = None) -> Dataset:
    """The noisy ellipse of Fig. 4 (`hjepa_jax.models.ellipse`, default radii 2 and 1.5) in
    the box [-3, 3] x [-2, 2]."""
    cfg = EllipseConfig() if cfg is None else cfg
    _common.config_of("ellipse_dataset", "cfg", cfg, EllipseConfig)
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    curve = np.stack([cfg.radius_1 * np.cos(t), cfg.radius_2 * np.sin(t)], -1)
    return Dataset(lambda k, n: ellipse_points(k, n, cfg), (-3.0, 3.0, -2.0, 2.0), curve)


def moons_dataset(noise: float) -> Dataset:
    """Two interleaved half circles (radius 1, the second shifted by (1, 0.5) and flipped)
    plus N(0, noise^2) per axis, in the box [-1.5, 2.5] x [-1, 1.5]."""
    _checks.non_negative("moons_dataset", "noise", noise, fix="use a std >= 0")
    u = np.linspace(0, np.pi, 1000)
    curve = np.concatenate(
        [np.stack([np.cos(u), np.sin(u)], -1), np.stack([1 - np.cos(u), 0.5 - np.sin(u)], -1)]
    )

    def moons(key, n):
        k_t, k_m, k_e = jax.random.split(key, 3)
        t = jax.random.uniform(k_t, (n,), maxval=jnp.pi)
        upper = jnp.stack([jnp.cos(t), jnp.sin(t)], -1)
        lower = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], -1)
        pick = jax.random.bernoulli(k_m, 0.5, (n, 1))
        return jnp.where(pick, upper, lower) + noise * jax.random.normal(k_e, (n, 2))

    return Dataset(moons, (-1.5, 2.5, -1.0, 1.5), curve)


def uniform_box(key: jax.Array, n: int, box) -> jax.Array:
    """[n, 2] points uniform in the box (x0, x1, y0, y1).

    Raises:
      ValueError: `n` is not an integer >= 1 or `box` not four numbers.
    """
    n = _checks.integer("uniform_box", "n", n, fix="ask for at least one point")
    if len(box) != 4:
        _checks.broken("uniform_box", "box", box, "(x0, x1, y0, y1)", "pass four numbers")
    low, high = jnp.array([box[0], box[2]]), jnp.array([box[1], box[3]])
    return jax.random.uniform(key, (n, 2), minval=low, maxval=high)


# ---- methods: each an (init, loss, energy) triple over the same kind of 2-D model ----


class Method(NamedTuple):
    """One trained energy of the plane."""

    init: Callable  # key -> params
    loss: Callable  # (params, batch [B, 2], key) -> (loss, aux)
    energy: Callable  # (params, y [2]) -> []: the free energy whose landscape is drawn


def _mlp(features) -> tuple[Callable, Callable]:
    net = hj_nn.MLP(tuple(features))
    apply = lambda params, y: _common.apply(net, params, y)  # in the parameters' dtype
    return apply, lambda key, dim: net.init(key, jnp.zeros(dim))


def contrastive_method(name: str, cfg: MethodsConfig, data: Dataset) -> Method:
    """F(y) = softplus(MLP(y)) >= 0, trained with the contrastive loss `name` (one of
    CONTRASTIVE)."""
    _checks.one_of("contrastive_method", "name", name, CONTRASTIVE, fix="pick one of them")
    box = data.box
    apply, init = _mlp((*cfg.hidden, 1))
    energy = lambda p, y: jax.nn.softplus(apply(p, y)[0])
    batch_energy = jax.vmap(energy, (None, 0))

    def corrupted(key, y):
        """Half uniform in the box, half data + noise: points that should have high F."""
        k_u, k_n = jax.random.split(key)
        near = sampling.corrupt_noise(k_n, y, cfg.negative_noise)
        return jnp.where(jnp.arange(len(y))[:, None] % 2 == 0, near, uniform_box(k_u, len(y), box))

    def loss(params, y, key):
        b, k = y.shape[0], cfg.n_negatives
        f_pos = batch_energy(params, y)
        if name in ("hinge", "square_square"):
            f_neg = batch_energy(params, corrupted(key, y))
            fn = losses.hinge if name == "hinge" else losses.square_square
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
            sampling.langevin_sample(
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
        nll = losses.nll(f_pos, f_negs, 1.0)
        reg = cfg.energy_l2 * sampling.energy_l2(f_pos, f_negs.reshape(-1))
        return nll + reg, {"f_pos": f_pos.mean(), "f_neg": f_negs.mean()}

    return Method(lambda key: init(key, 2), loss, energy)


def denoising_method(cfg: MethodsConfig, data: Dataset) -> Method:
    """Denoising auto-encoder: r(y~) reconstructs y from y~ = y + noise; F(y) = ||y - r(y)||^2."""
    del data
    apply, init = _mlp((*cfg.hidden, 2))
    energy = lambda p, y: jnp.sum((y - apply(p, y)) ** 2)

    def loss(params, y, key):
        noisy = sampling.corrupt_noise(key, y, cfg.negative_noise)
        return jnp.mean(jnp.sum((y - apply(params, noisy)) ** 2, -1)), {}

    return Method(lambda key: init(key, 2), loss, energy)


def sparse_coding_method(cfg: MethodsConfig, data: Dataset) -> Method:
    """Sparse coding (E11): E(u, z) = ||u - W z||^2 + l1 |z|_1 with unit-norm atoms W.

    The point is written as a unit vector u = [y, 1] / ||[y, 1]|| (a direction of R^3, one
    per point of the plane), so every atom stands for a point of the plane and a cheap code
    (sparse, small L1) reaches points near one atom or between two neighbouring ones.
    F(y) = min_z E by FISTA (`hj.losses.sparse_code`, step 1 / L from W). The atoms [3, K]
    start at random data points.
    """

    def atoms(v):
        return v / jnp.linalg.norm(v, axis=0, keepdims=True)

    def lift(y):
        u = jnp.append(y, 1.0)
        return u / jnp.linalg.norm(u)

    def energy(v, y):
        return losses.sparse_code(atoms(v), lift(y), cfg.l1, steps=cfg.ista_steps).energy

    def loss(v, y, key):
        del key
        return jnp.mean(jax.vmap(energy, (None, 0))(v, y)), {}

    def init(key):  # atoms at random data points
        return jax.vmap(lift)(data.sample(key, cfg.n_atoms)).T  # [3, K]

    return Method(init, loss, energy)


def kmeans_method(cfg: MethodsConfig, data: Dataset) -> Method:
    """K-means (E11): F(y) = squared distance to the nearest of K learned centroids [K, 2]."""
    energy = lambda c, y: losses.kmeans_free_energy(c, y)[0]

    def loss(centroids, y, key):
        del key
        return jnp.mean(jax.vmap(energy, (None, 0))(centroids, y)), {}

    # Centroids start at random data points (as k-means++ seeds do), so none starts dead.
    return Method(lambda key: data.sample(key, cfg.n_centroids), loss, energy)


def vae_method(cfg: MethodsConfig, data: Dataset) -> Method:
    """VAE (E11): ||y - Dec(z)||^2 + beta KL, z = mean + std * noise from Enc(y). F(y) is the
    noise-free free energy: the reconstruction of the mean code, plus the KL."""
    del data
    enc_apply, enc_init = _mlp((*cfg.hidden, 2 * cfg.vae_latent))
    dec_apply, dec_init = _mlp((*cfg.hidden, 2))

    def posterior(params, y):
        out = enc_apply(params["enc"], y)
        return out[: cfg.vae_latent], out[cfg.vae_latent :]

    def energy(params, y):  # the noise-free free energy: the mean code, plus the KL
        mean, log_var = posterior(params, y)
        recon = jnp.sum((y - dec_apply(params["dec"], mean)) ** 2)
        return recon + cfg.vae_beta * losses.gaussian_kl(mean, log_var)

    def loss(params, y, key):
        def one(y, k):
            mean, log_var = posterior(params, y)
            return losses.vae_energy(
                lambda p, z: dec_apply(p, z), params["dec"], mean, log_var, y, k, cfg.vae_beta
            )

        return jnp.mean(jax.vmap(one)(y, jax.random.split(key, len(y)))), {}

    init = lambda key: {
        "enc": enc_init(jax.random.fold_in(key, 0), 2),
        "dec": dec_init(jax.random.fold_in(key, 1), cfg.vae_latent),
    }
    return Method(init, loss, energy)


def vicreg_code_method(cfg: MethodsConfig, data: Dataset) -> Method:
    """Auto-encoder with a `code_dim` code; VICReg's variance and covariance terms on the
    batch of codes keep it informative. F(y) = ||y - Dec(Enc(y))||^2."""
    del data
    enc_apply, enc_init = _mlp((*cfg.hidden, cfg.code_dim))
    dec_apply, dec_init = _mlp((*cfg.hidden, 2))
    energy = lambda p, y: jnp.sum((y - dec_apply(p["dec"], enc_apply(p["enc"], y))) ** 2)

    def loss(params, y, key):
        del key
        codes = jax.vmap(enc_apply, (None, 0))(params["enc"], y)
        recon = jnp.mean(jax.vmap(energy, (None, 0))(params, y))
        _, terms = losses.vicreg(codes, codes)
        return recon + terms["variance"] + terms["covariance"], terms

    init = lambda key: {
        "enc": enc_init(jax.random.fold_in(key, 0), 2),
        "dec": dec_init(jax.random.fold_in(key, 1), cfg.code_dim),
    }
    return Method(init, loss, energy)


def build(name: str, cfg: MethodsConfig, data: Dataset) -> Method:
    """The method `name` (one of METHODS) on `data`.

    Raises:
      ValueError: an unknown `name`, or `cfg` not a MethodsConfig.
    """
    _checks.one_of("build", "name", name, METHODS, fix="pick one of methods.METHODS")
    _common.config_of("build", "cfg", cfg, MethodsConfig)
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
    """P(energy of a data point < energy of a uniform point), ties counting half.

    Args:
      low: [N] energies of data points; high: [M] energies of other points.

    >>> roc_auc(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    0.875
    """
    for name, v in (("low", low), ("high", high)):
        _checks.rank("roc_auc", name, v, 1, "[N]", fix="pass one energy per point")
    low, high = np.asarray(low)[:, None], np.asarray(high)[None, :]
    return float(np.mean((low < high) + 0.5 * (low == high)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of a [N] and b [N] (ranks by argsort; no tie correction).

    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 15.0]))
    0.5
    """
    _checks.rank("spearman", "a", a, 1, "[N]", fix="pass two vectors of one length")
    _checks.shape("spearman", "b", b, (len(a),), "[N]", fix="pass two vectors of one length")
    rank = lambda v: np.argsort(np.argsort(v))
    return float(np.corrcoef(rank(a), rank(b))[0, 1])
