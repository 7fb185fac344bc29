"""Paper Figs. 9-10: a JEPA learns digit representations without labels or contrastive pairs.

    python -m hjepa_jax.experiments.run jepa_digits --out out/jepa_digits [--quick]

x and y are two augmented views of the same 8x8 digit (scikit-learn's digits, through our
tfds builder): random shifts of up to a pixel and pixel noise (an erased patch optional).
A shared encoder maps each to s = Enc(view); a predictor with a small latent z (what the
augmentation changed) predicts s_y from s_x; the energy is the prediction error in
representation space (E13), trained with VICReg's variance and covariance terms (E14). The
same model trained without those terms collapses. The frozen encoder is probed linearly on
clean images against a random encoder and raw pixels.

Writes embeddings.npz (train_x, train_y, test_x, test_y: frozen-encoder features and labels).
"""

from __future__ import annotations

import dataclasses
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
    atomic_write,
    combined_summary,
    config,
    save_figure,
)

NAME = "jepa_digits"
TITLE = "Figs. 9-10: a JEPA on digits, with and without VICReg"
CLAIM = (
    "A JEPA trained only to predict one view's representation from another's, with the "
    "representations kept informative by variance and covariance terms, learns features "
    "that a linear probe reads the digit from far better than from a random encoder; "
    "without those terms the representation collapses."
)


@config
class Config:
    seed: int = 0
    encoder: Literal["mlp", "conv", "vit"] = "mlp"  # "mlp", "conv" or "vit" (patches of 4)
    hidden: tuple[Count, ...] = (256, 256)  # MLP encoder / predictor widths
    embed_dim: Count = 64
    latent_dim: int = 2  # z: what the augmentation changed
    latent_steps: Count = 5
    shift: int = 1  # max random shift, pixels
    noise: NonNegative = 0.05  # pixel noise std
    erase: int = 0  # side of an erased square (0: none; 3 of 8 pixels hurts the probe)
    steps: Count = 3000
    batch_size: Count = 256
    learning_rate: Positive = 1e-3
    log_every: Count = 100

    def quick(self) -> Config:
        return dataclasses.replace(self, steps=600)


def augment(key: jax.Array, image: jax.Array, cfg: Config) -> jax.Array:
    """One random view of an image [H, W, C] in [0, 1]: shift, erase a patch, add noise."""
    k_shift, k_erase, k_noise = jax.random.split(key, 3)
    h, w, _ = image.shape
    dy, dx = jax.random.randint(k_shift, (2,), -cfg.shift, cfg.shift + 1)
    padded = jnp.pad(image, ((cfg.shift, cfg.shift), (cfg.shift, cfg.shift), (0, 0)))
    view = jax.lax.dynamic_slice(padded, (cfg.shift + dy, cfg.shift + dx, 0), image.shape)
    high = jnp.array([h - cfg.erase + 1, w - cfg.erase + 1])
    ey, ex = jax.random.randint(k_erase, (2,), 0, high)
    rows, cols = jnp.arange(h)[:, None, None], jnp.arange(w)[None, :, None]
    erased = (rows >= ey) & (rows < ey + cfg.erase) & (cols >= ex) & (cols < ex + cfg.erase)
    view = jnp.where(erased, 0.0, view)
    return view + cfg.noise * jax.random.normal(k_noise, view.shape)


class Model:
    """Shared encoder, latent predictor, and the JEPA loss on two augmented views."""

    def __init__(self, cfg: Config, image_shape, regularized: bool = True):
        self.cfg = cfg
        if cfg.encoder == "conv":
            self.enc = hj.nn.ConvEncoder(channels=(32, 64), features=cfg.embed_dim)
        elif cfg.encoder == "vit":
            self.enc = hj.nn.ViTEncoder(features=cfg.embed_dim, patch_size=4)
        else:
            self.enc = hj.nn.MLP((*cfg.hidden, cfg.embed_dim))
        self.pred = hj.nn.MLP((*cfg.hidden, cfg.embed_dim))
        self.image_shape = image_shape
        self.jepa = hj.jepa.JEPAConfig(
            latent_dim=cfg.latent_dim,
            latent_steps=cfg.latent_steps,
            variance=25.0 if regularized else 0.0,
            covariance=1.0 if regularized else 0.0,
        )

    def encode(self, params, images: jax.Array) -> jax.Array:
        """[B, H, W, C] -> [B, D]."""
        x = images if self.cfg.encoder != "mlp" else images.reshape(len(images), -1)
        return self.enc.apply(params, x)

    def predict(self, params, s_x: jax.Array, z: jax.Array) -> jax.Array:
        return self.pred.apply(params, jnp.concatenate([s_x, z]))

    def init(self, key: jax.Array) -> dict:
        k_enc, k_pred = jax.random.split(key)
        example = jnp.zeros((1, *self.image_shape))
        return {
            "enc": self.enc.init(
                k_enc, example if self.cfg.encoder != "mlp" else example.reshape(1, -1)
            ),
            "pred": self.pred.init(k_pred, jnp.zeros(self.cfg.embed_dim + self.cfg.latent_dim)),
        }

    def loss(self, params, batch, key):
        images, _ = batch
        k_a, k_b, k_jepa = jax.random.split(key, 3)
        view = lambda k: jax.vmap(augment, (0, 0, None))(
            jax.random.split(k, len(images)), images, self.cfg
        )
        s_x = self.encode(params["enc"], view(k_a))
        s_y = self.encode(params["enc"], view(k_b))
        return hj.jepa.loss(params["pred"], self.predict, s_x, s_y, self.jepa, k_jepa)


def spectrum(features: np.ndarray) -> np.ndarray:
    """Singular values of the centered features, normalized to sum 1 (the covariance spectrum)."""
    sv = np.linalg.svd(features - features.mean(0), compute_uv=False)
    return sv / sv.sum()


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train with and without VICReg, probe, draw. Returns the flat metrics."""
    train = hj.data.load("hjepa_digits", "train")
    test = hj.data.load("hjepa_digits", "test")
    train_images, test_images = train["image"], test["image"]
    key = jax.random.PRNGKey(cfg.seed)
    k_init, k_run, k_random = jax.random.split(key, 3)
    runs, features = {}, {}
    for name, regularized in (("vicreg", True), ("no_vicreg", False)):
        model = Model(cfg, train_images.shape[1:], regularized)
        runs[name] = hj.train.train(
            model.loss,
            model.init(k_init),
            optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)),
            (jnp.asarray(train_images), jnp.asarray(train["label"])),
            loop=options.loop(cfg, out, model=name),
            key=k_run,
            config=dataclasses.asdict(cfg),
            desc=f"{NAME}/{name}",
        )
        encode = jax.jit(lambda p, x, m=model: m.encode(p, x))
        params = runs[name].state.params["enc"]
        features[name] = (
            np.asarray(encode(params, train_images)),
            np.asarray(encode(params, test_images)),
        )
    random_params = Model(cfg, train_images.shape[1:]).init(k_random)["enc"]
    encode = jax.jit(lambda p, x: Model(cfg, train_images.shape[1:]).encode(p, x))
    features["random"] = (
        np.asarray(encode(random_params, train_images)),
        np.asarray(encode(random_params, test_images)),
    )
    features["pixels"] = (
        train_images.reshape(len(train_images), -1),
        test_images.reshape(len(test_images), -1),
    )

    labels = (train["label"], test["label"])
    acc = {
        name: hj.probes.classification_accuracy(f[0], labels[0], f[1], labels[1])
        for name, f in features.items()
    }
    metrics = {
        "probe_acc": acc["vicreg"],
        "probe_acc_no_vicreg": acc["no_vicreg"],
        "probe_acc_random": acc["random"],
        "probe_acc_pixels": acc["pixels"],
    }
    for name in ("vicreg", "no_vicreg"):
        stats = hj.collapse.collapse_metrics(jnp.asarray(features[name][1]))
        suffix = "" if name == "vicreg" else "_no_vicreg"
        metrics[f"embedding_std{suffix}"] = float(stats["embedding_std"])
        metrics[f"effective_rank{suffix}"] = float(stats["effective_rank"])
        metrics[f"final_energy{suffix}"] = runs[name].history[-1]["energy"]
    summaries = [r.summary for r in runs.values()]
    metrics.update(
        combined_summary(summaries, cfg.batch_size, runs["vicreg"].summary["final_loss"])
    )
    arrays = {
        "train_x": features["vicreg"][0],
        "train_y": labels[0],
        "test_x": features["vicreg"][1],
        "test_y": labels[1],
    }
    atomic_write(out / "embeddings.npz", lambda f: np.savez(f, **arrays))
    draw(cfg, out / f"{NAME}.png", runs, features, acc)
    return metrics


def draw(cfg, path, runs, features, acc) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    names = {"vicreg": "JEPA + VICReg", "no_vicreg": "JEPA, no VICReg (collapses)"}
    for name, label in names.items():
        rows = runs[name].history
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["embedding_std"] for r in rows], label=label)
        axes[1].semilogy(spectrum(features[name][1]), label=label)
    axes[1].semilogy(spectrum(features["random"][1]), label="random encoder", ls="--")
    axes[0].set(
        yscale="log",
        xlabel="step",
        ylabel="embedding std (batch, mean over dims)",
        title="collapse while training",
    )
    axes[1].set(
        xlabel="component",
        ylabel="normalized singular value",
        title="spectrum of the test embeddings",
    )
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    bars = ["vicreg", "no_vicreg", "random", "pixels"]
    axes[2].bar(
        range(4), [acc[b] for b in bars], color=["tab:green", "tab:red", "tab:gray", "tab:blue"]
    )
    axes[2].set_xticks(range(4), ["JEPA+VICReg", "no VICReg", "random enc.", "raw pixels"])
    for i, b in enumerate(bars):
        axes[2].text(i, acc[b] + 0.01, f"{acc[b]:.3f}", ha="center")
    axes[2].set(ylim=(0, 1.05), ylabel="linear probe test accuracy", title="digit probe")
    fig.suptitle(f"{TITLE} (seed {cfg.seed}, {cfg.steps} steps, {cfg.encoder} encoder)")
    fig.tight_layout()
    save_figure(fig, path)
