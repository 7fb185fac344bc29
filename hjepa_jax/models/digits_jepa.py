"""The JEPA of paper Figs. 9-10 on small images: two augmented views, one encoder.

x and y are two random views of the same image (`augment`: a shift of up to `shift` pixels,
an optional erased square, pixel noise). A shared encoder maps each to s = Enc(view) [D]; a
predictor with a small latent z (what the augmentation changed) predicts s_y from s_x:

    E(s_x, s_y, z) = ||s_y - Pred([s_x, z])||^2                         (E13)

trained by `hj.jepa.loss` with VICReg's variance and covariance terms (E14) on the batch of
representations, or without them (`regularized=False`: the representation collapses).

    >>> import jax
    >>> from hjepa_jax.models.digits_jepa import DigitsJEPA, DigitsJEPAConfig
    >>> model = DigitsJEPA(DigitsJEPAConfig(hidden=(16,), embed_dim=8), (8, 8, 1))
    >>> params = model.init(jax.random.PRNGKey(0))
    >>> model.encode(params["enc"], jax.numpy.zeros((3, 8, 8, 1))).shape
    (3, 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from hjepa_jax import _checks, jepa
from hjepa_jax import nn as hj_nn
from hjepa_jax.models import _common

__all__ = ["ENCODERS", "DigitsJEPA", "DigitsJEPAConfig", "augment"]

ENCODERS = ("mlp", "conv", "vit")


@dataclasses.dataclass(frozen=True)
class DigitsJEPAConfig:
    """The encoder, the latent predictor and the augmentation of `DigitsJEPA`.

    Attributes:
      encoder: "mlp" (of the flattened image), "conv" (32, 64 channels, stride 2) or "vit"
        (patches of 4 pixels).
      hidden: MLP encoder and predictor widths before their `embed_dim` output.
      embed_dim: D, the representation.
      latent_dim: z, what the augmentation changed (0: no latent).
      latent_steps: steps of the inner loop that minimizes the energy over z.
      shift: the largest random shift of a view, pixels.
      noise: pixel noise std of a view.
      erase: side of a square erased from a view (0: none).

    Raises:
      ValueError: a field out of its range, naming it.
    """

    encoder: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    embed_dim: int = 64
    latent_dim: int = 2
    latent_steps: int = 5
    shift: int = 1
    noise: float = 0.05
    erase: int = 0

    def __post_init__(self):
        fn, fix = "DigitsJEPAConfig", "see DigitsJEPAConfig's attributes"
        _checks.one_of(fn, "encoder", self.encoder, ENCODERS, fix="pick one of them")
        object.__setattr__(self, "hidden", _common.widths(fn, "hidden", self.hidden, fix))
        _common.counts(fn, self, ("embed_dim", "latent_steps"), fix)
        _common.counts(fn, self, ("latent_dim", "shift", "erase"), fix, minimum=0)
        _common.non_negatives(fn, self, ("noise",), fix)


def augment(key: jax.Array, image: jax.Array, cfg: DigitsJEPAConfig) -> jax.Array:
    """One random view of an image [H, W, C] in [0, 1]: shift, erase a patch, add noise.

    Returns [H, W, C]. `cfg.erase` must not exceed H or W (the patch must fit).
    """
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


class DigitsJEPA:
    """Shared encoder, latent predictor, and the JEPA loss on two augmented views.

    Args:
      cfg: the model's config.
      image_shape: (H, W, C) of one image.
      regularized: with VICReg's variance (25) and covariance (1) terms; without them the
        representation collapses.

    Raises:
      ValueError: `cfg` is not a DigitsJEPAConfig, `image_shape` not three sizes >= 1, or
        `cfg.erase` larger than the image.
    """

    def __init__(self, cfg: DigitsJEPAConfig, image_shape: Sequence[int], regularized=True):
        fn = "DigitsJEPA"
        _common.config_of(fn, "cfg", cfg, DigitsJEPAConfig)
        if len(tuple(image_shape)) != 3:
            _checks.broken(fn, "image_shape", image_shape, "(H, W, C)", "pass one image's shape")
        fix = "pass one image's shape (H, W, C)"
        image_shape = tuple(
            _checks.integer(fn, f"image_shape[{i}]", v, fix=fix) for i, v in enumerate(image_shape)
        )
        if cfg.erase > min(image_shape[:2]):
            _checks.broken(fn, "cfg.erase", cfg.erase, f"<= {min(image_shape[:2])}", "erase less")
        self.cfg = cfg
        if cfg.encoder == "conv":
            self.enc = hj_nn.ConvEncoder(channels=(32, 64), features=cfg.embed_dim)
        elif cfg.encoder == "vit":
            self.enc = hj_nn.ViTEncoder(features=cfg.embed_dim, patch_size=4)
        else:
            self.enc = hj_nn.MLP((*cfg.hidden, cfg.embed_dim))
        self.pred = hj_nn.MLP((*cfg.hidden, cfg.embed_dim))
        self.image_shape = image_shape
        self.jepa = jepa.JEPAConfig(
            latent_dim=cfg.latent_dim,
            latent_steps=cfg.latent_steps,
            variance=25.0 if regularized else 0.0,
            covariance=1.0 if regularized else 0.0,
        )

    def encode(self, params, images: jax.Array) -> jax.Array:
        """s = Enc(images): [B, H, W, C] -> [B, D], computed in the parameters' dtype."""
        x = images.astype(_common.compute_dtype(params))
        x = x if self.cfg.encoder != "mlp" else x.reshape(len(x), -1)
        return self.enc.apply(params, x)

    def predict(self, params, s_x: jax.Array, z: jax.Array) -> jax.Array:
        """Pred([s_x, z]): s_x [D], z [latent_dim] -> [D], in the parameters' dtype."""
        return self.pred.apply(
            params, jnp.concatenate([s_x, z]).astype(_common.compute_dtype(params))
        )

    def init(self, key: jax.Array) -> dict:
        """{"enc": the encoder's parameters, "pred": the predictor's}."""
        k_enc, k_pred = jax.random.split(key)
        example = jnp.zeros((1, *self.image_shape))
        return {
            "enc": self.enc.init(
                k_enc, example if self.cfg.encoder != "mlp" else example.reshape(1, -1)
            ),
            "pred": self.pred.init(k_pred, jnp.zeros(self.cfg.embed_dim + self.cfg.latent_dim)),
        }

    def loss(self, params, batch, key):
        """`hj.jepa.loss` on two random views of each image of batch = (images [B, H, W, C],
        labels [B], unused) -> (loss, metrics)."""
        images, _ = batch
        k_a, k_b, k_jepa = jax.random.split(key, 3)
        view = lambda k: jax.vmap(augment, (0, 0, None))(
            jax.random.split(k, len(images)), images, self.cfg
        )
        # float32 representations: VICReg's variance and covariance and the collapse metrics
        # are batch statistics, taken in float32 whatever the encoder computes in.
        s_x = self.encode(params["enc"], view(k_a)).astype(jnp.float32)
        s_y = self.encode(params["enc"], view(k_b)).astype(jnp.float32)
        return jepa.loss(params["pred"], self.predict, s_x, s_y, self.jepa, k_jepa)
