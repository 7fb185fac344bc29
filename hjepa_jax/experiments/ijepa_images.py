"""A masked-image JEPA (I-JEPA with the paper's latent) on any tfds image dataset.

    hjepa-run ijepa_images --quick --out out/ijepa_images     # tiny ViT, minutes on a CPU
    hjepa-run ijepa_images --out out/ijepa_images             # the CPU config, under an hour
    hjepa-run ijepa_images --latent-dim 16 --out out/ijepa_z  # with z per target block (E13)
    hjepa-run ijepa_images --preset vit_b16_imagenet --dataset imagenet2012 \\
        --data-dir gs://BUCKET/tfds --out gs://BUCKET/runs/ijepa --ckpt-dir gs://BUCKET/ckpt

Shows that predicting the representations of masked image blocks from a visible context
block, in representation space and without pixels, labels or negative pairs, learns features
from which a linear probe reads the class far better than from a random encoder of the same
architecture or from raw pixels; the EMA target encoder (or VICReg's variance and covariance
terms) keeps them from collapsing. The model is `hjepa_jax.models.ijepa` (a ViT context
encoder that sees only the context patches, a narrow ViT predictor, I-JEPA's multi-block
masks from `hjepa_jax.masks`), the data `hjepa_jax.data.images` (grain workers decode the
JPEGs and draw random resized crops; each host reads its own shard; batches are prefetched to
the devices; the iterator's position is saved with every checkpoint).

Data: `--dataset NAME[:SPLIT]` (training split, default train) and `--eval-split` name any tfds
image dataset prepared in array_record under `--data-dir` (or $TFDS_DATA_DIR); one that is not
prepared stops the run with the command that prepares it. The default, hjepa_shapes_images
(10 classes of procedurally drawn shapes, 64 x 64 JPEG), is built locally on first use
(`--num-train`, `--num-test` size it; they apply to it only).

Evaluation (every `--eval-every` steps and at the end): frozen features, the mean of the
target encoder's patch tokens (of the context encoder with "vicreg"), of the first
`--probe-train` training images and the first `--probe-test` images of the eval split (center
crops, no augmentation); a ridge linear probe (`hj.probes.classification_accuracy`) and a
k-NN vote (`hj.probes.knn_accuracy`) trained on the first and scored on the second. The
baselines: the same probes on the encoder at initialization, and a ridge probe on the raw
pixels (average-pooled to at most 32 x 32).

Recipe (I-JEPA's, Assran et al. 2023, `configs/in1k_vith14_ep300.yaml`): AdamW, learning rate
warmed up linearly from `start_lr` to `learning_rate` over `warmup_steps` then cosine down to
`final_lr`; weight decay (not on biases and norms) cosine from `weight_decay` to
`final_weight_decay`; EMA momentum 0.996 -> 1.0; masks 4 x (0.15-0.2, aspect 0.75-1.5) and
context 0.85-1.0; crops of scale 0.3-1.0; ImageNet's mean and std. Ours differs in: the
prediction energy is the squared error (E13), not smooth L1; pixels are normalized on the
devices (batches travel as uint8); horizontal flips are on by default (`--flip false` for
I-JEPA's setting, as the preset has); the C context patches kept are drawn uniformly from the
context block (`--context-subset random`), where I-JEPA keeps the first C, the block's top
rows (`--context-subset first`, as the preset has): on this default's 8 x 8 grid C is 11
patches, and the first 11 would always be the top of the image.

Writes metrics.json (probe_acc, probe_acc_random_init, probe_acc_pixels, knn_acc,
knn_acc_random_init, embedding_std, effective_rank, images_per_s, data_wait_fraction,
final_energy, final_energy_z0, train_gflops_per_image, ...), embeddings.npz (features,
labels: the eval split's frozen features) and ijepa_images.png. Measured numbers:
docs/results.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import hjepa_jax as hj
from hjepa_jax.experiments.common import (
    Count,
    NonNegative,
    Positive,
    RunOptions,
    Whole,
    atomic_write,
    config,
    on_process_0,
    save_figure,
)
from hjepa_jax.models import image_probe
from hjepa_jax.models.ijepa import IJEPA, IJEPAConfig, adamw_recipe, masked_image_loss, normalize

NAME = "ijepa_images"
TITLE = "Masked-image JEPA: blocks predicted in representation space, probed frozen"
CLAIM = (
    "Predicting the representations of masked image blocks from a visible context, with no "
    "labels, pixels or negative pairs in the loss, learns features from which a linear "
    "probe reads the class far better than from a random encoder or raw pixels."
)
IMAGENET_TRAIN = 1_281_167  # images in imagenet2012's train split
STEPS_PER_EPOCH = IMAGENET_TRAIN // 2048  # 625 full batches of 2048 (I-JEPA drops the last)


@config
class Config:
    seed: int = 0
    dataset: str = "hjepa_shapes_images"  # NAME[:SPLIT] of a tfds image dataset (training)
    eval_split: str = "test"  # the split the probes are scored on
    data_dir: str = ""  # tfds data dir, local or gs:// ("": $TFDS_DATA_DIR or tfds's default)
    num_train: Count = 10000  # hjepa_shapes_images only: its sizes
    num_test: Count = 2000
    image_size: Count = 64  # crops are image_size x image_size
    crop_scale: tuple[Positive, ...] = (0.3, 1.0)  # random resized crop's area range
    flip: bool = True  # random horizontal flips
    eval_crop: Positive = 1.0  # center crop's share of the shorter side (ImageNet: 0.875)
    patch_size: Count = 8
    width: Count = 192  # the ViT encoder
    depth: Count = 6
    heads: Count = 3
    pred_width: Count = 96  # the narrow predictor
    pred_depth: Count = 3
    pred_heads: Count = 3
    collapse: Literal["ema", "vicreg"] = "ema"
    context_subset: Literal["first", "random"] = "random"  # which C context patches are kept
    ema_start: NonNegative = 0.996
    ema_end: NonNegative = 1.0
    latent_dim: Whole = 0  # z per target block (0: none), minimized inside the step
    latent_steps: Count = 3
    latent_radius: Positive = 1.0  # ||z|| <= radius
    steps: Count = 4000
    batch_size: Count = 64
    learning_rate: Positive = 1e-3  # the peak
    start_lr: NonNegative = 2e-4
    final_lr: NonNegative = 1e-6
    warmup_steps: Whole = 400
    weight_decay: NonNegative = 0.04
    final_weight_decay: NonNegative = 0.4
    workers: Whole = 0  # grain worker processes decoding and augmenting (0: in this one)
    eval_every: Whole = 1000  # steps between probes (0: only at the end)
    probe_train: Count = 4000  # training images the probes are fit on
    probe_test: Count = 2000  # eval-split images they are scored on
    knn_k: Count = 20
    log_every: Count = 50

    PRESETS: ClassVar[dict[str, dict]] = {
        # I-JEPA's recipe at ViT-B/16 on ImageNet-1k: 300 epochs of batch 2048, 40 warm-up.
        "vit_b16_imagenet": dict(
            dataset="imagenet2012:train",
            eval_split="validation",
            image_size=224,
            flip=False,
            eval_crop=0.875,
            patch_size=16,
            width=768,
            depth=12,
            heads=12,
            pred_width=384,
            pred_depth=6,
            pred_heads=12,
            steps=300 * STEPS_PER_EPOCH,
            batch_size=2048,
            warmup_steps=40 * STEPS_PER_EPOCH,
            context_subset="first",
            workers=16,
            eval_every=12500,
            probe_train=25600,
            probe_test=50000,
            log_every=100,
        )
    }

    def quick(self) -> Config:
        return dataclasses.replace(
            self,
            num_train=4000,
            num_test=1000,
            width=96,
            depth=4,
            heads=3,
            pred_width=48,
            pred_depth=2,
            steps=600,
            warmup_steps=60,
            eval_every=300,
            probe_train=2000,
            probe_test=1000,
        )

    def check(self) -> None:
        if len(self.crop_scale) != 2 or not self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"{__name__}.Config: crop_scale must be (low, high), low <= high <= 1")
        if self.warmup_steps >= self.steps:
            raise ValueError(
                f"{__name__}.Config: warmup_steps={self.warmup_steps} must be below "
                f"steps={self.steps}"
            )
        if self.eval_crop > 1:
            raise ValueError(f"{__name__}.Config: eval_crop must be <= 1, got {self.eval_crop}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"{__name__}.Config: patch_size={self.patch_size} must divide "
                f"image_size={self.image_size}"
            )
        self.model_config()  # the model's own checks (heads dividing widths, EMA range)

    def model_config(self) -> IJEPAConfig:
        names = [f.name for f in dataclasses.fields(IJEPAConfig)]
        return IJEPAConfig(**{n: getattr(self, n) for n in names if hasattr(self, n)})


def run(cfg: Config, out: Path, options: RunOptions = RunOptions()) -> dict:
    """Train the I-JEPA, probe it over training, draw. Returns the flat metrics."""
    im = hj.data.images
    name, split = im.parse_dataset(cfg.dataset)
    ours = {"num_train": cfg.num_train, "num_test": cfg.num_test}
    builder_config = ours if name == "hjepa_shapes_images" else {}
    data_dir = cfg.data_dir or None
    train_src = im.image_source(name, split, data_dir, **builder_config)
    test_src = im.image_source(name, cfg.eval_split, data_dir, **builder_config)

    model = IJEPA(cfg.model_config(), (cfg.image_size, cfg.image_size, 3))
    spec = hj.masks.MultiBlockSpec(grid=model.grid, context_subset=cfg.context_subset)
    k_init, k_run = jax.random.split(jax.random.PRNGKey(cfg.seed))
    loop = dataclasses.replace(options.loop(cfg, out), eval_every=cfg.eval_every or None)
    mesh = hj.parallel.make_mesh(spec=loop.mesh)
    sharding = hj.parallel.data_sharding(mesh)

    which = "target" if cfg.collapse == "ema" else "context"
    encode = jax.jit(lambda p, x: jnp.mean(model.encode(p[which], normalize(x)), axis=1))
    probe = image_probe.FrozenProbe(
        encode,
        im.head(train_src, cfg.probe_train),
        im.head(test_src, cfg.probe_test),
        sharding,
        batch_size=cfg.batch_size,
        image_size=cfg.image_size,
        crop_fraction=cfg.eval_crop,
        workers=cfg.workers,
        knn_k=cfg.knn_k,
    )
    init = jax.jit(model.init)(k_init)
    random_init = probe.scores(probe.features(init))
    del init

    loader = im.train_loader(
        train_src,
        batch_size=cfg.batch_size,
        image_size=cfg.image_size,
        seed=cfg.seed,
        scale=tuple(cfg.crop_scale),
        flip=cfg.flip,
        dtype="uint8",
        worker_count=cfg.workers,
    )
    batches = iter(loader)
    if options.parallel == "jit":  # the next batches wait on the devices, sharded
        batches = im.prefetch_to_device(batches, size=2, sharding=sharding)
    stream = im.BatchStream(batches, cfg.batch_size)
    evaluations_features = {}

    def evaluate(params) -> dict:
        features = probe.features(params)
        evaluations_features["last"] = features
        return probe.scores(features)

    try:
        result = hj.train.train(
            masked_image_loss(model, spec),
            lambda: model.init(k_init),
            model.optimizer(
                adamw_recipe(
                    cfg.steps,
                    cfg.warmup_steps,
                    cfg.learning_rate,
                    cfg.start_lr,
                    cfg.final_lr,
                    cfg.weight_decay,
                    cfg.final_weight_decay,
                ),
                cfg.steps,
            ),
            stream,
            loop=loop,
            key=k_run,
            config=dataclasses.asdict(cfg),
            mesh=mesh,
            desc=NAME,
            evaluate=evaluate,
        )
    finally:
        stream.close()

    final = result.evaluations[-1]
    features = evaluations_features.get("last") or probe.features(result.state.params)
    last = result.history[-1]
    summary = result.summary
    ran = summary["steps"] - summary["resumed_from_step"]
    timed = cfg.batch_size * max(ran - 1, 1) / summary["examples_per_s"]  # after step 1
    num_context, target_size = hj.masks.multiblock_sizes(spec)[::-1]
    flops = model.flops_per_image(num_context, target_size, spec.num_targets)
    metrics = {
        **summary,
        "probe_acc": final["probe_acc"],
        "knn_acc": final["knn_acc"],
        "embedding_std": final["embedding_std"],
        "effective_rank": final["effective_rank"],
        "probe_acc_random_init": random_init["probe_acc"],
        "knn_acc_random_init": random_init["knn_acc"],
        "probe_acc_pixels": probe.pixel_accuracy(),
        "images_per_s": summary["examples_per_s"],
        "data_wait_fraction": sum(stream.waits[1:]) / timed if ran > 1 else float("nan"),
        "final_energy": last["energy"],
        "final_energy_z0": last["energy_z0"],
        "target_rank": last["target_rank"],
        "train_gflops_per_image": flops["train_step"] / 1e9,
        "num_context_patches": num_context,
        "num_target_patches": target_size,
    }
    arrays = {"features": features["test"], "labels": probe.labels["test"]}
    atomic_write(out / "embeddings.npz", lambda f: np.savez(f, **arrays))
    examples = next(iter(probe.loaders["test"]))["image"][:4]
    masks = hj.masks.sample_multiblock(jax.random.PRNGKey(cfg.seed), len(examples), spec)
    draw(cfg, out / f"{NAME}.png", result, random_init, metrics, examples, masks, model.grid)
    return metrics


@on_process_0
def draw(cfg, path, result, random_init, metrics, examples, masks, grid) -> None:
    fig = plt.figure(figsize=(17, 8.5))
    top = fig.subplots(1, 3, gridspec_kw={"bottom": 0.45, "wspace": 0.35})
    rows = [r for r in result.history if "energy" in r]
    steps = [r["step"] for r in rows]
    top[0].semilogy(steps, [r["loss"] for r in rows], label="loss")
    top[0].semilogy(steps, [r["energy"] for r in rows], label="prediction energy (z minimized)")
    if cfg.latent_dim:
        top[0].semilogy(steps, [r["energy_z0"] for r in rows], ls="--", label="energy at z = 0")
    top[0].set(xlabel="step", title="training loss")
    for name, label in (("target_std", "target tokens"), ("context_std", "context tokens")):
        top[1].plot(steps, [r[name] for r in rows], label=f"std, {label}")
    twin = top[1].twinx()
    twin.plot(steps, [r["target_rank"] for r in rows], color="tab:green", label="rank, target")
    twin.set_ylabel("effective rank", color="tab:green")
    top[1].set(xlabel="step", ylabel="std per dimension", title="collapse metrics (batch)")
    evals = result.evaluations
    e_steps = [e["step"] for e in evals]
    top[2].plot(e_steps, [e["probe_acc"] for e in evals], "o-", label="linear probe")
    top[2].plot(e_steps, [e["knn_acc"] for e in evals], "s-", label=f"{cfg.knn_k}-NN")
    for value, label, style in (
        (random_init["probe_acc"], "linear, random encoder", ":"),
        (metrics["probe_acc_pixels"], "linear, raw pixels", "--"),
    ):
        top[2].axhline(value, ls=style, color="gray")
        top[2].text(
            0.02,
            value + 0.01,
            f"{label} {value:.3f}",
            fontsize=8,
            transform=top[2].get_yaxis_transform(),
        )
    top[2].set(xlabel="step", ylabel="test accuracy", ylim=(0, 1.05), title="frozen probes")
    for ax in (top[0], top[1], top[2]):
        ax.legend(fontsize=8, loc="lower left" if ax is top[1] else "best")
    bottom = fig.subplots(1, len(examples), gridspec_kw={"top": 0.36})
    for i, ax in enumerate(np.atleast_1d(bottom)):
        ax.imshow(mask_overlay(examples[i], masks.context_idx[i], masks.target_idx[i], grid))
        ax.set(xticks=[], yticks=[], title="context (clear) and 4 targets" if i == 0 else "")
    fig.suptitle(
        f"{TITLE}\n{cfg.dataset}, ViT {cfg.width}x{cfg.depth} /{cfg.patch_size}, {cfg.steps} "
        f"steps, {cfg.collapse}, latent_dim {cfg.latent_dim}: probe {metrics['probe_acc']:.3f}"
    )
    save_figure(fig, path)


def mask_overlay(image, context_idx, target_idx, grid) -> np.ndarray:
    """The image with patches outside the context darkened and each target block tinted."""
    h, w = grid
    p = image.shape[0] // h
    out = image.astype(np.float32) / 255.0 * 0.35
    colours = plt.get_cmap("tab10")(np.arange(len(target_idx)))[:, :3]
    for idx in np.asarray(context_idx):
        r, c = divmod(int(idx), w)
        out[r * p : (r + 1) * p, c * p : (c + 1) * p] = (
            image[r * p : (r + 1) * p, c * p : (c + 1) * p] / 255.0
        )
    for colour, block in zip(colours, np.asarray(target_idx), strict=True):
        for idx in block:
            r, c = divmod(int(idx), w)
            patch = image[r * p : (r + 1) * p, c * p : (c + 1) * p] / 255.0
            out[r * p : (r + 1) * p, c * p : (c + 1) * p] = 0.5 * patch + 0.5 * colour
    return out
