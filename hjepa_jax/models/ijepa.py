"""I-JEPA on images (Assran et al. 2023), with the latent of our E13 per target block.

Each image comes with its masks (`hjepa_jax.masks` draws them; any index arrays will do):
context_idx [C], the patches the context encoder sees, and target_idx [M, T], M blocks of T
patches to predict. Then, for a batch,

    s_x   = Enc(image, context_idx)                [B, C, D]  (blocks see only the C patches)
    s_y   = LN(Enc_bar(image))[target_idx]         [B, M, T, D]  (whole image, stop-gradient)
    F_m   = min_{||z_m|| <= r} mean_{t,d} (s_y - Pred(s_x, pos_m, z_m))^2 + lam ||z_m||^2  (E13)
    loss  = prediction * mean_{b,m} F_m  [+ VICReg's variance and covariance terms]      (E14)

Against collapse (`IJEPAConfig.collapse`): "ema", I-JEPA's target encoder Enc_bar, an EMA of
Enc whose parameters are params["target"] (moved by the optimizer `IJEPA.optimizer` returns,
`hj.ijepa.ema_target`); or "vicreg", Enc_bar = Enc (no layer norm, gradients flow) and
VICReg's variance and covariance terms (E12) on the context and the image tokens, both
centered per patch position (`hj.ijepa.within_position`). The predictor makes one pass per
target block (the M blocks folded into the batch, as I-JEPA), so blocks never see each
other.

    >>> import jax
    >>> from hjepa_jax.models.ijepa import IJEPA, IJEPAConfig
    >>> cfg = IJEPAConfig(patch_size=8, width=16, depth=1, heads=2, pred_width=8, pred_depth=1,
    ...                   pred_heads=2)
    >>> model = IJEPA(cfg, (32, 32, 3))
    >>> params = jax.jit(model.init)(jax.random.PRNGKey(0))
    >>> sorted(params), model.num_patches
    (['context', 'predictor', 'target'], 16)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import _checks, ijepa, masks
from hjepa_jax import nn as hj_nn
from hjepa_jax.models import _common

__all__ = ["IJEPA", "IJEPAConfig", "adamw_recipe", "masked_image_loss", "normalize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per-channel, of pixels in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class IJEPAConfig:
    """The networks, the anti-collapse method and the latent of `IJEPA`.

    Defaults: I-JEPA's ViT-B/16 with its 6-block, 384-wide predictor, the EMA target, and no
    latent.

    Attributes:
      patch_size: p, the side of a patch.
      width, depth, heads, mlp_ratio: the ViT encoder (D = width).
      pos_embed: "sincos" (fixed 2-D, as I-JEPA) or "learned", for encoder and predictor.
      pred_width, pred_depth, pred_heads: the narrow predictor.
      collapse: "ema" (target encoder = EMA of the context encoder) or "vicreg".
      ema_start, ema_end: the EMA momentum's range (cosine over training).
      latent_dim: Z, the latent per target block (0: none).
      latent_steps, latent_lr, latent_radius, latent_l2: its inner minimization and bound
        (`hj.ijepa.LatentConfig`).
      prediction: weight of the prediction energy.
      variance, covariance: weights of VICReg's terms ("vicreg" only; VICReg's 25 : 25 : 1
        over 25, the prediction energy being a mean as VICReg's invariance).

    Raises:
      ValueError: a field out of its range, naming it.

    Example:
      >>> from hjepa_jax.models.ijepa import IJEPAConfig
      >>> IJEPAConfig(collapse="vicreg").variance
      1.0
    """

    patch_size: int = 16
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"
    pred_width: int = 384
    pred_depth: int = 6
    pred_heads: int = 12
    collapse: str = "ema"
    ema_start: float = 0.996
    ema_end: float = 1.0
    latent_dim: int = 0
    latent_steps: int = 3
    latent_lr: float = 1.0
    latent_radius: float = 1.0
    latent_l2: float = 0.0
    prediction: float = 1.0
    variance: float = 1.0
    covariance: float = 0.04

    def __post_init__(self):
        fn, fix = "IJEPAConfig", "see IJEPAConfig's attributes"
        names = ("patch_size", "width", "depth", "heads", "pred_width", "pred_depth")
        _common.counts(fn, self, (*names, "pred_heads", "latent_steps"), fix)
        _common.counts(fn, self, ("latent_dim",), fix, minimum=0)
        _checks.one_of(fn, "pos_embed", self.pos_embed, hj_nn.vit.POS_EMBEDS, "pick one")
        _checks.one_of(fn, "collapse", self.collapse, ijepa.COLLAPSE_MODES, "pick one")
        _common.positives(fn, self, ("mlp_ratio", "latent_lr", "latent_radius"), fix)
        _common.non_negatives(fn, self, ("latent_l2", "prediction", "variance", "covariance"), fix)
        for width, heads in (("width", "heads"), ("pred_width", "pred_heads")):
            if getattr(self, width) % getattr(self, heads):
                problem = f"does not divide {width}={getattr(self, width)}"
                _checks.fail(fn, heads, getattr(self, heads), problem, "pick a divisor")
        fix = "pass 0 <= ema_start <= ema_end <= 1, e.g. 0.996 and 1.0"
        _checks.real(fn, "ema_start", self.ema_start, at_least=0.0, at_most=1.0, fix=fix)
        _checks.real(fn, "ema_end", self.ema_end, at_least=self.ema_start, at_most=1.0, fix=fix)


class IJEPA:
    """Context encoder, predictor, target encoder (EMA) and the I-JEPA loss with a latent.

    Params: {"context": encoder, "predictor": predictor[, "target": the encoder's EMA]}.
    Train with `loss` and the optimizer `optimizer(tx, total_steps)` gives (it moves the EMA
    after each step; with "vicreg" it is `tx`).

    Args:
      cfg: IJEPAConfig.
      image_shape: (H, W, C) of one image, H and W divisible by cfg.patch_size.

    Raises:
      ValueError: `cfg` is not an IJEPAConfig, or `image_shape` is not three sizes >= 1
        with H and W divisible by the patch size.
    """

    def __init__(self, cfg: IJEPAConfig, image_shape: Sequence[int]):
        fn = "IJEPA"
        _common.config_of(fn, "cfg", cfg, IJEPAConfig)
        if isinstance(image_shape, str) or len(tuple(image_shape)) != 3:
            _checks.broken(fn, "image_shape", image_shape, "(H, W, C)", "pass one image's shape")
        fix = "pass one image's shape (H, W, C)"
        image_shape = tuple(
            _checks.integer(fn, f"image_shape[{i}]", v, fix=fix) for i, v in enumerate(image_shape)
        )
        h, w, _ = image_shape
        p = cfg.patch_size
        if h % p or w % p:
            problem = f"does not divide the image size {h}x{w}"
            _checks.fail(fn, "cfg.patch_size", p, problem, "crop the images or change p")
        self.cfg = cfg
        self.image_shape = image_shape
        self.grid = (h // p, w // p)
        self.num_patches = self.grid[0] * self.grid[1]
        self.encoder = hj_nn.ViTTokens(
            patch_size=p,
            width=cfg.width,
            depth=cfg.depth,
            heads=cfg.heads,
            mlp_ratio=cfg.mlp_ratio,
            pos_embed=cfg.pos_embed,
        )
        self.predictor = hj_nn.ViTPredictor(
            grid=self.grid,
            width=cfg.pred_width,
            depth=cfg.pred_depth,
            heads=cfg.pred_heads,
            mlp_ratio=cfg.mlp_ratio,
            pos_embed=cfg.pos_embed,
            features=cfg.width,
        )
        self.latent = ijepa.LatentConfig(
            dim=cfg.latent_dim,
            steps=cfg.latent_steps,
            lr=cfg.latent_lr,
            radius=cfg.latent_radius,
            l2=cfg.latent_l2,
        )

    # ---- parameters ----

    def init(self, key: jax.Array) -> dict:
        """{"context", "predictor"[, "target"]}: the EMA target starts as a copy of the
        context encoder. Jittable (`jax.jit(model.init)(key)`)."""
        k_enc, k_pred = jax.random.split(key)
        enc = self.encoder.init(k_enc, jnp.zeros((1, *self.image_shape)))
        one = jnp.zeros((1, 1), jnp.int32)
        z = jnp.zeros((1, self.cfg.latent_dim)) if self.cfg.latent_dim else None
        pred = self.predictor.init(k_pred, jnp.zeros((1, 1, self.cfg.width)), one, one, z)
        params = {"context": enc, "predictor": pred}
        if self.cfg.collapse == "ema":
            params["target"] = jax.tree_util.tree_map(jnp.copy, enc)
        return params

    def optimizer(
        self, tx: optax.GradientTransformation, total_steps: int
    ) -> optax.GradientTransformation:
        """The optimizer of the params: `tx` on the context encoder and the predictor, then
        the EMA of the target (`hj.ijepa.ema_target`, momentum cfg.ema_start -> cfg.ema_end
        over `total_steps`); `tx` itself with "vicreg"."""
        if self.cfg.collapse != "ema":
            return tx
        return ijepa.ema_target(tx, total_steps, self.cfg.ema_start, self.cfg.ema_end)

    # ---- the networks ----

    def encode(self, enc_params, images: jax.Array, idx: jax.Array | None = None) -> jax.Array:
        """Patch tokens: images [B, H, W, C], idx None | [B, K] -> [B, N or K, D], computed
        in the parameters' dtype (bfloat16 under `hj.train.mixed_precision`)."""
        images = images.astype(_common.compute_dtype(enc_params))
        return self.encoder.apply(enc_params, images, idx)

    def target_tokens(self, params, images: jax.Array) -> jax.Array:
        """s_y of every patch, [B, H, W, C] -> [B, N, D] float32: "ema": LN(Enc_bar(images))
        with stop-gradient; "vicreg": Enc(images) (gradients flow)."""
        if self.cfg.collapse == "ema":
            tokens = self.encode(params["target"], images).astype(jnp.float32)
            return jax.lax.stop_gradient(ijepa.layer_norm(tokens))
        return self.encode(params["context"], images).astype(jnp.float32)

    def predict(
        self,
        pred_params,
        context: jax.Array,
        context_idx: jax.Array,
        target_idx: jax.Array,
        z: jax.Array | None = None,
    ) -> jax.Array:
        """Pred: context [..., C, D], context_idx [..., C], target_idx [..., T],
        z None | [..., latent_dim] -> [..., T, D], computed in the parameters' dtype."""
        dtype = _common.compute_dtype(pred_params)
        z = None if z is None else z.astype(dtype)
        return self.predictor.apply(pred_params, context.astype(dtype), context_idx, target_idx, z)

    # ---- the objective ----

    def _batch(self, batch) -> tuple[jax.Array, jax.Array, jax.Array]:
        fn = "IJEPA.loss"
        if not isinstance(batch, Mapping) or not {"image", "context_idx", "target_idx"} <= set(
            batch
        ):
            got = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            fix = 'pass {"image": [B, H, W, C], "context_idx": [B, C], "target_idx": [B, M, T]}'
            _checks.fail(fn, "batch", got, "lacks image, context_idx or target_idx", fix)
        images, ci, ti = batch["image"], batch["context_idx"], batch["target_idx"]
        fix = "pass a batch of B >= 2 images of image_shape, with their masks"
        _checks.shape(fn, "batch['image']", images, (None, *self.image_shape), "[B, H, W, C]", fix)
        b = images.shape[0]
        if b < 2:
            _checks.fail(fn, "B", b, "is too small: the token statistics need B >= 2", fix)
        _checks.shape(fn, "batch['context_idx']", ci, (b, None), "[B, C]", fix)
        _checks.shape(fn, "batch['target_idx']", ti, (b, None, None), "[B, M, T]", fix)
        for name, idx in (("batch['context_idx']", ci), ("batch['target_idx']", ti)):
            if not jnp.issubdtype(jnp.result_type(idx), jnp.integer):
                _checks.broken(fn, f"{name}.dtype", str(jnp.result_type(idx)), "integer", fix)
            if not _checks.traced(idx) and jnp.size(idx):
                low, high = int(jnp.min(idx)), int(jnp.max(idx))
                if low < 0 or high >= self.num_patches:
                    problem = f"holds indices in [{low}, {high}], outside [0, {self.num_patches})"
                    _checks.fail(fn, name, idx, problem, "pass patch indices of the image grid")
        return images, ci, ti

    def loss(self, params, batch, key: jax.Array) -> tuple[jax.Array, dict]:
        """The I-JEPA objective on a batch (E13-E14); jittable, `jax.grad` reaches the context
        encoder and the predictor (the EMA target's gradient is zero).

        Args:
          params: {"context", "predictor"[, "target"]} from `init`.
          batch: {"image": [B, H, W, C], "context_idx": [B, C], "target_idx": [B, M, T]}
            (integer patch indices, row-major; other keys are ignored), B >= 2.
          key: unused (z starts at 0); kept for the loop's `loss_fn(params, batch, key)`.

        Returns:
          (loss [], metrics), metrics of floats []:
            energy: mean F over images and blocks, z minimized (with lam ||z||^2);
            energy_z0: the same at z = 0 (equal to energy without a latent);
            z_norm: mean ||z_m||;
            target_std, target_min_std, target_rank: of the image's target tokens s_y
              [B, N, D] and context_std, context_min_std, context_rank: of s_x [B, C, D],
              each centered per patch position (`hj.ijepa.token_statistics`);
            variance, covariance: VICReg's terms ("vicreg" only).
        """
        del key
        images, ci, ti = self._batch(batch)
        s_x = self.encode(params["context"], images, ci)  # [B, C, D], the compute dtype
        full = self.target_tokens(params, images)  # [B, N, D] float32
        s_y = ijepa.gather_tokens(full, ti)  # [B, M, T, D]
        res = ijepa.free_energy(self.predict, params["predictor"], s_x, ci, ti, s_y, self.latent)
        mean_f = jnp.mean(res.energy)
        total = self.cfg.prediction * mean_f
        n = self.num_patches
        all_idx = jnp.broadcast_to(jnp.arange(n), full.shape[:2])
        c_y, dof_y = ijepa.within_position(full, all_idx, n)
        c_x, dof_x = ijepa.within_position(s_x.astype(jnp.float32), ci, n)  # batch statistics
        metrics = {
            "energy": mean_f,
            "energy_z0": jnp.mean(res.energy_z0),
            "z_norm": jnp.mean(jnp.linalg.norm(res.z, axis=-1)),
        }
        if self.cfg.collapse == "vicreg":
            v_x, cov_x = ijepa.variance_covariance(c_x, dof_x)
            v_y, cov_y = ijepa.variance_covariance(c_y, dof_y)
            variance, covariance = (v_x + v_y) / 2, cov_x + cov_y
            total = total + self.cfg.variance * variance + self.cfg.covariance * covariance
            metrics.update(variance=variance, covariance=covariance)
        for prefix, centered, dof in (("target", c_y, dof_y), ("context", c_x, dof_x)):
            for name, value in ijepa.token_statistics(centered, dof).items():
                metrics[f"{prefix}_{name}"] = value
        return total, metrics

    # ---- cost ----

    def flops_per_image(
        self, num_context: int, target_size: int, num_targets: int = 4
    ) -> dict[str, int]:
        """Matmul FLOPs per image (`hj.ijepa.vit_flops`), for C context patches and M blocks
        of T patches:

            context_encoder  forward on C tokens (patch embedding on all N)
            target_encoder   forward on N tokens
            predictor        M passes on C + T tokens, with its in and out projections
            latent           latent_steps x 2 predictor passes (forward, z-gradient)
            train_step       3 (context_encoder + predictor) + target_encoder ("ema"; 3x
                             with "vicreg", trained) + latent

        Example:
          >>> from hjepa_jax.models.ijepa import IJEPA, IJEPAConfig
          >>> model = IJEPA(IJEPAConfig(), (224, 224, 3))  # ViT-B/16, I-JEPA's masks
          >>> round(model.flops_per_image(num_context=98, target_size=36)["train_step"] / 1e9)
          124
        """
        fn, cfg = "IJEPA.flops_per_image", self.cfg
        c = _checks.integer(fn, "num_context", num_context, fix="pass C, context patches")
        t = _checks.integer(fn, "target_size", target_size, fix="pass T, patches per block")
        m = _checks.integer(fn, "num_targets", num_targets, fix="pass M, blocks per image")
        size, ch = self.image_shape[:2], self.image_shape[2]
        vit = (size, cfg.patch_size, cfg.width, cfg.depth, cfg.mlp_ratio, ch)
        context = ijepa.vit_flops(*vit, tokens=c)
        target = ijepa.vit_flops(*vit)
        d, w = cfg.width, cfg.pred_width
        block = 2 * c * d * w + 2 * t * w * d + 2 * cfg.latent_dim * w
        block += ijepa.transformer_flops(c + t, w, cfg.pred_depth, cfg.mlp_ratio)
        predictor = m * block
        inner = 2 * cfg.latent_steps * predictor if cfg.latent_dim else 0
        target_cost = target if cfg.collapse == "ema" else 3 * target
        return {
            "context_encoder": context,
            "target_encoder": target,
            "predictor": predictor,
            "latent": inner,
            "train_step": 3 * (context + predictor) + target_cost + inner,
        }


def adamw_recipe(
    steps: int,
    warmup_steps: int,
    peak_lr: float = 1e-3,
    start_lr: float = 2e-4,
    final_lr: float = 1e-6,
    weight_decay: float = 0.04,
    final_weight_decay: float = 0.4,
) -> optax.GradientTransformation:
    """I-JEPA's AdamW over `steps`: the learning rate warmed up linearly from start_lr to
    peak_lr over warmup_steps, then cosine down to final_lr; weight decay cosine from
    weight_decay up to final_weight_decay, on the matrices only (not biases, norms, position
    or mask tokens of rank < 2). Defaults: I-JEPA's."""
    lr = optax.warmup_cosine_decay_schedule(start_lr, peak_lr, warmup_steps, steps, final_lr)
    start, end = weight_decay, final_weight_decay

    def wd(step):  # cosine from start (step 0) to end (the last step)
        done = jnp.minimum(step / steps, 1.0)
        return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * done))

    matrices = lambda params: jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)
    return optax.adamw(lr, weight_decay=wd, mask=matrices)


def normalize(images: jax.Array) -> jax.Array:
    """uint8 pixels [..., 3] -> float32, ImageNet's per-channel mean and std."""
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    return (images.astype(jnp.float32) / 255.0 - mean) / std


def masked_image_loss(model: IJEPA, spec: masks.MultiBlockSpec):
    """`loss_fn(params, {"image": uint8 [B, H, W, 3]}, key)`: masks drawn from the key."""

    def loss(params, batch, key):
        images = normalize(batch["image"])
        drawn = masks.sample_multiblock(key, images.shape[0], spec)
        with_masks = {
            "image": images,
            "context_idx": drawn.context_idx,
            "target_idx": drawn.target_idx,
        }
        return model.loss(params, with_masks, key)

    return loss
