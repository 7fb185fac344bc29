"""Paper Figs. 9-10: a JEPA learns digit representations without labels or contrastive pairs.

    hjepa-run jepa_digits --quick --out out/jepa_digits   # 600 steps per model, seconds
    hjepa-run jepa_digits --out out/jepa_digits           # 3000 steps per model

Shows that a JEPA trained only to predict one augmented view's representation from another's
(scikit-learn's 8x8 digits, through our tfds builder), kept informative by VICReg's variance
and covariance terms (E14), learns features a linear probe reads the digit from better than
from a random encoder or raw pixels, and that the same model without those terms collapses.
The model is `hjepa_jax.models.digits_jepa`; `--encoder` picks an MLP, conv or ViT encoder.

Writes embeddings.npz (train_x, train_y, test_x, test_y: frozen-encoder features and labels).
Measured numbers: docs/results.md.
"""

from __future__ import annotations

import dataclasses
import functools
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
    on_process_0,
    save_figure,
)
from hjepa_jax.models.digits_jepa import DigitsJEPA, DigitsJEPAConfig

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

    def model_config(self) -> DigitsJEPAConfig:
        """The model and augmentation fields, as `hjepa_jax.models.digits_jepa` takes them."""
        names = [f.name for f in dataclasses.fields(DigitsJEPAConfig)]
        return DigitsJEPAConfig(**{name: getattr(self, name) for name in names})


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
    shape = train_images.shape[1:]
    for name, regularized in (("vicreg", True), ("no_vicreg", False)):
        model = DigitsJEPA(cfg.model_config(), shape, regularized)
        runs[name] = hj.train.train(
            model.loss,
            functools.partial(model.init, k_init),  # made sharded, under jit
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
    random_model = DigitsJEPA(cfg.model_config(), shape)
    random_params = jax.jit(random_model.init)(k_random)["enc"]  # one compile, not one per op
    encode = jax.jit(random_model.encode)
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


@on_process_0
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
