"""Paper Fig. 5: a deterministic predictor cannot collapse; a joint-embedding EBM can.

    hjepa-run fig5_collapse --quick --out out/fig5_collapse   # 1500 steps per case, ~10 s
    hjepa-run fig5_collapse --out out/fig5_collapse           # 20000 steps per case, ~40 s

Shows that trained only to lower the energy of data pairs, a predictor keeps random pairs at
high energy while a joint embedding collapses (constant embeddings, every pair at the same
energy), and that VICReg or a contrastive loss prevents the collapse.

Data: two related views of a 4-D latent u ~ N(0, I): x = A u + noise in R^16 (a random linear
manifold), y = R x + noise with R a fixed random rotation; both standardized per coordinate.
Four energies are trained on the same pairs, each with its own loss:
  predictor:    F(x, y) = ||y - Pred(x)||^2 (Fig. 5a), energy loss (E6): lower F on data only;
  energy_only:  F(x, y) = ||Enc_x(x) - Enc_y(y)||^2 (Fig. 5b, two MLP encoders), the same
                energy loss: nothing stops the encoders from mapping everything to one point;
  vicreg:       the same joint embedding, VICReg (E12) on s_x = Enc_x(x), s_y = Enc_y(y);
  contrastive:  the same joint embedding, hinge (E7) with y_bar = the y of another example.
The loss of each step logs the embeddings' std (mean over dims of the std over the batch of s_x;
of Pred(x) for the predictor), their effective rank, and the energy of positive pairs and of
random pairs (x with the y of another example of the batch), so collapse shows as it happens.

Figure: per case against the step, the embeddings' std, the energy of positive and random
pairs, and the relative gap (F_rand - F_pos) / F_rand. Metrics (held-out pairs, per case):
final_std_*, energy_gap_* (F_rand - F_pos), relative_gap_*, energy_pos_*, energy_rand_*,
effective_rank_*; final_loss is the energy-only joint embedding's (~0: it collapsed).
Measured numbers: docs/results.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
    combined_summary,
    config,
    on_process_0,
    save_figure,
)
from hjepa_jax.models import _common

NAME = "fig5_collapse"
TITLE = "Fig. 5: a deterministic predictor cannot collapse, a joint embedding can"
CLAIM = (
    "A deterministic predictor F(x, y) = ||y - Pred(x)||^2 trained only to lower F on data "
    "keeps high energy on random pairs: it cannot collapse. A joint-embedding EBM "
    "F(x, y) = ||Enc(x) - Enc(y)||^2 trained the same way collapses: the embeddings become "
    "constant and every pair gets the same (zero) energy. A regularized loss (VICReg) or a "
    "contrastive loss keeps the embeddings informative and the energy of random pairs high."
)
CASES = ("predictor", "energy_only", "vicreg", "contrastive")


@config
class Config:
    seed: int = 0
    n_train: Count = 4096  # (x, y) pairs
    n_test: Count = 1024  # held-out pairs for the final metrics
    dim: Count = 16  # dimension of x and y
    latent_dim: Count = 4  # dimension of the shared latent u
    # std of the noise on x and on y (before standardizing). The views must disagree: with
    # little noise, invariant encoders also get F ~ 0 and the collapse is much slower (noise
    # 0.1, 2000 steps at lr 1e-3: std 0.05, relative gap still 0.96).
    noise: NonNegative = 0.5
    hidden: tuple[Count, ...] = (64, 64)  # MLP widths of the predictor and of each encoder
    embed_dim: Count = 16  # dimension of the embeddings s_x, s_y
    steps: Count = 20000  # per case
    batch_size: Count = 256
    learning_rate: Positive = 3e-3  # Adam with cosine decay
    vicreg_sim: NonNegative = 25.0  # VICReg weights (the VICReg paper's)
    vicreg_var: NonNegative = 25.0
    vicreg_cov: NonNegative = 1.0
    margin: NonNegative = 1.0  # hinge margin m on F(x, y_bar) - F(x, y)
    log_every: Count = 50

    def quick(self) -> Config:
        return dataclasses.replace(self, steps=1500, log_every=20)


def two_views(cfg: Config) -> tuple[np.ndarray, ...]:
    """x_train, y_train, x_test, y_test: [n, dim] float32, two views of one latent u.

        u ~ N(0, I_latent_dim),   x = A u + e,   y = R x + e',   e, e' ~ N(0, noise^2 I)

    A: [dim, latent_dim] with N(0, 1 / latent_dim) entries (x lies near a random 4-D plane),
    R: a fixed random rotation; x and y are divided by sqrt(1 + noise^2), their per-coordinate
    std. Generated with numpy from the seed (fast, nothing to compile).
    """
    rng = np.random.default_rng(cfg.seed)
    a = rng.normal(size=(cfg.dim, cfg.latent_dim)) / np.sqrt(cfg.latent_dim)
    r, _ = np.linalg.qr(rng.normal(size=(cfg.dim, cfg.dim)))
    scale = np.sqrt(1.0 + cfg.noise**2)
    views = []
    for n in (cfg.n_train, cfg.n_test):
        u = rng.normal(size=(n, cfg.latent_dim))
        x = u @ a.T + cfg.noise * rng.normal(size=(n, cfg.dim))
        y = x @ r.T + cfg.noise * rng.normal(size=(n, cfg.dim))
        views += [(x / scale).astype(np.float32), (y / scale).astype(np.float32)]
    return tuple(views)


def collapse_stats(s_x: jax.Array, s_y: jax.Array) -> dict:
    """What a step logs about collapse. s_x: [B, D] the embeddings of x (or Pred(x)),
    s_y: [B, D] those of y (or y itself).

    Random pairs match x_i with y_{i+1}: the batch is a uniform sample, so that is a random y.
    """
    e_pos = jnp.sum((s_x - s_y) ** 2, axis=-1)
    e_rand = jnp.sum((s_x - jnp.roll(s_y, 1, axis=0)) ** 2, axis=-1)
    return {
        **hj.collapse.collapse_metrics(s_x),
        "energy_pos": jnp.mean(e_pos),
        "energy_rand": jnp.mean(e_rand),
    }


def relative_gap(energy_pos, energy_rand):
    """(F_rand - F_pos) / F_rand: 1 when positive pairs sit far below random ones, 0 when the
    energy does not tell them apart. Works on floats and numpy arrays."""
    return (energy_rand - energy_pos) / np.maximum(energy_rand, 1e-30)


class Models:
    """The predictor, the two encoders, and one loss per case: loss(params, batch, key)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.pred = hj.nn.MLP((*cfg.hidden, cfg.dim))
        self.enc = hj.nn.MLP((*cfg.hidden, cfg.embed_dim))  # one module, two sets of params

    def init(self, key: jax.Array) -> dict:
        """{"predictor": Pred's params, "joint": {"enc_x", "enc_y"}}. The three joint-embedding
        cases start from the same encoders, so only their losses differ."""
        k_pred, k_x, k_y = jax.random.split(key, 3)
        x = jnp.zeros(self.cfg.dim)
        joint = {"enc_x": self.enc.init(k_x, x), "enc_y": self.enc.init(k_y, x)}
        return {"predictor": self.pred.init(k_pred, x), "joint": joint}

    def views(self, case: str, params, x: jax.Array, y: jax.Array):
        """[B, dim] pairs -> (s_x, s_y) with F = ||s_x - s_y||^2.

        (Pred(x), y) for the predictor, (Enc_x(x), Enc_y(y)) for the joint embeddings.
        """
        if case == "predictor":
            return _common.apply(self.pred, params, x), y
        enc = lambda p, v: _common.apply(self.enc, p, v)  # in the parameters' dtype
        return enc(params["enc_x"], x), enc(params["enc_y"], y)

    def loss(self, case: str):
        """The training loss of `case`: (params, (x, y), key) -> (loss, collapse stats)."""
        cfg = self.cfg

        def loss_fn(params, batch, key):
            del key
            s_x, s_y = self.views(case, params, *batch)
            stats = collapse_stats(s_x, s_y)
            if case == "vicreg":
                loss, terms = hj.losses.vicreg(
                    s_x, s_y, cfg.vicreg_sim, cfg.vicreg_var, cfg.vicreg_cov
                )
                return loss, {**stats, **terms}
            f_pos = jnp.sum((s_x - s_y) ** 2, axis=-1)
            if case == "contrastive":
                f_neg = jnp.sum((s_x - jnp.roll(s_y, 1, axis=0)) ** 2, axis=-1)
                return hj.losses.hinge(f_pos, f_neg, cfg.margin), stats
            return jnp.mean(f_pos), stats  # predictor and energy_only: energy loss (E6)

        return loss_fn


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train the four cases, evaluate collapse on held-out pairs, draw. Returns flat metrics."""
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), 2)
    x_train, y_train, x_test, y_test = two_views(cfg)
    models = Models(cfg)
    init = jax.jit(models.init)  # called per case: fresh buffers, as train donates its state
    runs = {}
    for case in CASES:
        runs[case] = hj.train.train(
            models.loss(case),
            init(keys[0])["predictor" if case == "predictor" else "joint"],
            optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
            (x_train, y_train),
            loop=options.loop(cfg, out, model=case),
            key=keys[1],
            config=dataclasses.asdict(cfg),
            desc=f"{NAME}/{case}",
        )

    metrics = {}
    for case, res in runs.items():
        # The same statistics as the training log, on held-out pairs (random pairs: x_i with
        # y_{i+1}, independent draws).
        stats = jax.jit(lambda p, c=case: collapse_stats(*models.views(c, p, x_test, y_test)))
        stats = {k: float(v) for k, v in stats(res.state.params).items()}
        metrics.update(
            {
                # Mean over dims of the std of s_x over held-out x (of Pred(x) for the
                # predictor, whose "embedding" is its prediction in y space).
                f"final_std_{case}": stats["embedding_std"],
                # Scale-free: for a collapsed (tiny) embedding it measures the spread of what
                # is left, so it is high there too; read it beside the std.
                f"effective_rank_{case}": stats["effective_rank"],
                f"energy_pos_{case}": stats["energy_pos"],
                f"energy_rand_{case}": stats["energy_rand"],
                # The raw gap, in the units of F (squared distance; the data have unit std per
                # coordinate): a collapsed energy is flat, every pair near 0.
                f"energy_gap_{case}": stats["energy_rand"] - stats["energy_pos"],
                # The gap relative to F on random pairs, in [0, 1]: scale-free, so it shows that
                # collapse is more than a shrinking scale (pairs become indistinguishable).
                f"relative_gap_{case}": relative_gap(stats["energy_pos"], stats["energy_rand"]),
                f"final_loss_{case}": res.summary["final_loss"],
            }
        )

    summaries = [r.summary for r in runs.values()]
    metrics.update(
        combined_summary(summaries, cfg.batch_size, runs["energy_only"].summary["final_loss"])
    )
    draw(cfg, out / f"{NAME}.png", {case: res.history for case, res in runs.items()})
    return metrics


@on_process_0
def draw(cfg, path, histories) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    labels = {
        "predictor": "predictor ||y - Pred(x)||^2, energy loss",
        "energy_only": "joint embedding, energy loss",
        "vicreg": "joint embedding, VICReg",
        "contrastive": "joint embedding, hinge (contrastive)",
    }
    colors = dict(zip(CASES, ("tab:blue", "tab:red", "tab:green", "tab:orange"), strict=True))
    for case, rows in histories.items():
        step = [r["step"] for r in rows]
        col = lambda name, rows=rows: np.asarray([r[name] for r in rows])
        c = colors[case]
        axes[0].plot(step, col("embedding_std"), c=c, label=labels[case])
        axes[1].plot(step, col("energy_rand"), c=c, ls="--")
        axes[1].plot(step, col("energy_pos"), c=c, label=labels[case])
        axes[2].plot(step, relative_gap(col("energy_pos"), col("energy_rand")), c=c)
    axes[0].set(
        yscale="log",
        xlabel="step",
        ylabel="mean over dims of the std over the batch",
        title="embedding std: s_x = Enc_x(x) (Pred(x) for the predictor)",
    )
    axes[1].set(
        yscale="log",
        xlabel="step",
        ylabel="F(x, y), batch mean",
        title="energy of positive pairs (solid) and random pairs (dashed)",
    )
    axes[2].set(
        xlabel="step",
        ylabel="(F_rand - F_pos) / F_rand",
        title="relative energy gap (scale-free)",
        ylim=(0, 1.02),
    )
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{TITLE} (seed {cfg.seed}, {cfg.steps} steps each)")
    fig.tight_layout()
    save_figure(fig, path)
