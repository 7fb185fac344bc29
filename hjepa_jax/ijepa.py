"""I-JEPA (Assran et al. 2023): the JEPA of E13-E14 on masked images, in patch-token space.

An image is cut into N patches. A context encoder sees only the C context patches and gives
tokens s_x [C, D]; the targets are M blocks of T patches each, whose tokens s_y [T, D] come
from a target encoder that sees the whole image. A narrow predictor, told the positions of a
block's patches (and a latent z of that block), predicts its tokens from s_x:

    E(x, y_m, z_m) = D(s_y_m, Pred(s_x, pos_m, z_m)) + lam ||z_m||^2               (E13)
    D(s_y, p)      = 1 / (T D) sum_t ||s_y_t - p_t||^2        (I-JEPA's L2, a mean)
    F(x, y_m)      = min_{||z_m|| <= r} E(x, y_m, z_m)          (z_m = 0 when no latent)

Training lowers the mean F over images and blocks. Of the criteria of E14, (3) is this
energy, (4) the latent's bound (a ball of radius r, a penalty lam and few dimensions: z
cannot carry the whole block), and (1)-(2), keeping s_x and s_y informative, one of:

  "ema":    the target encoder is an exponential moving average of the context encoder
            (momentum 0.996 -> 1 over training), its tokens layer-normed and stop-gradient
            (I-JEPA, as BYOL: an architectural method, no term in the loss);
  "vicreg": VICReg's variance and covariance terms (E12) on the tokens, the target encoder
            being the context encoder itself (no EMA).

This module holds the pure pieces: gathering tokens by patch index, the EMA and its
schedule (also as an optax wrapper, so the EMA parameters live in the params pytree and are
checkpointed and sharded like them), the block free energies with the inner minimization
over z (`hj.latent.minimize`), token statistics, and FLOP counts.
`hjepa_jax.models.ijepa` builds the networks and the loss from them.

Shapes: B images, N = (H / p) (W / p) patches numbered row-major, context_idx [B, C],
target_idx [B, M, T] (integer patch indices, fixed sizes per batch), tokens [..., D].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import _checks, collapse, constraints, latent

__all__ = [
    "COLLAPSE_MODES",
    "BlockEnergies",
    "EMAState",
    "LatentConfig",
    "ema_target",
    "ema_update",
    "free_energy",
    "gather_tokens",
    "layer_norm",
    "momentum_schedule",
    "prediction_energy",
    "token_statistics",
    "transformer_flops",
    "variance_covariance",
    "vit_flops",
    "within_position",
]

COLLAPSE_MODES = ("ema", "vicreg")


# ---- tokens ----


def gather_tokens(tokens: jax.Array, idx: jax.Array) -> jax.Array:
    """tokens [B, N, D] at patch indices idx [B, *K] -> [B, *K, D] (e.g. K = (M, T)).

    Traced indices out of [0, N) are clamped (jnp's gather); concrete ones are not checked.

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> tokens = jnp.arange(6.0).reshape(1, 3, 2)        # B=1, N=3, D=2
      >>> ijepa.gather_tokens(tokens, jnp.array([[[2], [0]]])).tolist()  # M=2 blocks, T=1
      [[[[4.0, 5.0]], [[0.0, 1.0]]]]
    """
    fix = "pass tokens [B, N, D] and integer indices [B, ...] of the same B"
    _checks.rank("gather_tokens", "tokens", tokens, 3, "[B, N, D]", fix)
    if jnp.ndim(idx) < 1 or jnp.shape(idx)[0] != jnp.shape(tokens)[0]:
        _checks.shape("gather_tokens", "idx", idx, (tokens.shape[0], None), "[B, ...]", fix)
    b, _, d = tokens.shape
    flat = jnp.take_along_axis(tokens, jnp.reshape(idx, (b, -1, 1)), axis=1)
    return flat.reshape((*jnp.shape(idx), d))


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """(x - mean) / sqrt(var + eps) over the last axis, no parameters (I-JEPA's target norm).

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> print(ijepa.layer_norm(jnp.array([1.0, 3.0])).round(3))
      [-1.  1.]
    """
    _checks.positive("layer_norm", "eps", eps, "pass a small eps > 0, e.g. 1e-6")
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


# ---- the EMA target encoder ----


def momentum_schedule(
    step: int | jax.Array, total_steps: int, start: float = 0.996, end: float = 1.0
) -> jax.Array:
    """The EMA momentum at `step`: cosine from `start` (step 0) to `end` (step >= total_steps).

        m(t) = end - (end - start) (1 + cos(pi min(t, T) / T)) / 2

    (BYOL's schedule; I-JEPA's code raises it linearly over the same range.) `step` may be
    traced (the optimizer's step count); `total_steps` is a Python int >= 1.

    Example:
      >>> from hjepa_jax import ijepa
      >>> [round(float(ijepa.momentum_schedule(t, 100)), 4) for t in (0, 50, 100, 200)]
      [0.996, 0.998, 1.0, 1.0]
    """
    fn = "momentum_schedule"
    total_steps = _checks.integer(fn, "total_steps", total_steps, fix="pass the run's steps")
    _check_momenta(fn, start, end)
    if not _checks.traced(step):
        _checks.non_negative(fn, "step", step, "pass a step count >= 0")
    t = jnp.minimum(jnp.asarray(step, jnp.float32), total_steps) / total_steps
    return end - (end - start) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))


def _check_momenta(fn: str, start, end) -> None:
    fix = "pass 0 <= start <= end <= 1, e.g. start=0.996, end=1.0"
    _checks.real(fn, "start", start, at_least=0.0, at_most=1.0, fix=fix)
    _checks.real(fn, "end", end, at_least=0.0, at_most=1.0, fix=fix)
    if not _checks.traced((start, end)) and float(start) > float(end):
        _checks.fail(fn, "start", start, f"is above end={end}", fix)


def ema_update(target, online, momentum: float | jax.Array):
    """target <- momentum * target + (1 - momentum) * online, leaf by leaf (pure).

    Args:
      target, online: pytrees of the same structure and shapes (the target and context
        encoders' parameters).
      momentum: in [0, 1]; 1 keeps the target, 0 copies the online parameters. A traced
        momentum is not checked.

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> new = ijepa.ema_update({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, 0.75)
      >>> new["w"].tolist()
      [0.25, 0.25]
    """
    fix = "pass a momentum in [0, 1], e.g. from momentum_schedule"
    _checks.real("ema_update", "momentum", momentum, at_least=0.0, at_most=1.0, fix=fix)
    t_def, o_def = jax.tree_util.tree_structure(target), jax.tree_util.tree_structure(online)
    if t_def != o_def:
        fix = "pass the target and online encoders' parameters (the same module)"
        leaves = f"<{o_def.num_leaves} leaves>"
        _checks.fail("ema_update", "online", leaves, "has another structure than target", fix)
    for t, o in zip(
        jax.tree_util.tree_leaves(target), jax.tree_util.tree_leaves(online), strict=True
    ):
        layout = "the target leaf's shape"
        fix = "pass parameters of the same module (same sizes)"
        _checks.shape("ema_update", "online", o, jnp.shape(t), layout, fix)
    return jax.tree_util.tree_map(
        lambda t, o: (momentum * t + (1.0 - momentum) * o).astype(jnp.result_type(t)),
        target,
        online,
    )


class EMAState(NamedTuple):
    """State of `ema_target`: count [] int32, the updates made; inner: the wrapped optimizer's
    state (of the online parameters only)."""

    count: jax.Array
    inner: Any


def ema_target(
    tx: optax.GradientTransformation,
    total_steps: int,
    start: float = 0.996,
    end: float = 1.0,
    online: str = "context",
    target: str = "target",
) -> optax.GradientTransformation:
    """An optimizer over params {..., online: w, target: w_bar} that also moves the EMA.

    `tx` updates every entry but `target` (it never sees the target, so neither its moments
    nor weight decay touch it, and no optimizer state is kept for it); then

        w_bar <- m_k w_bar + (1 - m_k) w_new,     m_k = momentum_schedule(k, total_steps)

    with w_new the online parameters after this step, k = 0, 1, ... the update's count (as
    I-JEPA: step, then EMA). The EMA parameters stay in the params pytree: the training loop,
    its checkpoints and its sharding treat them as parameters, and no loop change is needed.
    Their gradient should be zero (the loss stops it); it is ignored.

    Args:
      tx: the optimizer of the online parameters (e.g. optax.adamw).
      total_steps: steps over which the momentum rises from `start` to `end`.
      start, end: the momentum range, 0 <= start <= end <= 1.
      online, target: the keys of the online (context) encoder and its EMA in params.

    Example:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> from hjepa_jax import ijepa
      >>> tx = ijepa.ema_target(optax.sgd(1.0), total_steps=10, start=0.5)
      >>> params = {"context": jnp.ones(2), "target": jnp.ones(2)}
      >>> grads = {"context": jnp.ones(2), "target": jnp.zeros(2)}
      >>> updates, state = tx.update(grads, tx.init(params), params)
      >>> new = optax.apply_updates(params, updates)  # context 1 - 1 = 0; target 0.5 * 1 + 0.5 * 0
      >>> new["context"].tolist(), new["target"].tolist(), int(state.count)
      ([0.0, 0.0], [0.5, 0.5], 1)
    """
    fn = "ema_target"
    total_steps = _checks.integer(fn, "total_steps", total_steps, fix="pass the run's steps")
    _check_momenta(fn, start, end)
    if online == target:
        _checks.fail(fn, "target", target, "is the online key too", "pass two different keys")

    def split(tree):
        if not isinstance(tree, dict) or online not in tree or target not in tree:
            keys = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
            fix = f"pass params as a dict holding {online!r} and {target!r}"
            _checks.fail(fn, "params", keys, "lacks the online or the target entry", fix)
        return {k: v for k, v in tree.items() if k != target}

    def init_fn(params):
        return EMAState(jnp.zeros((), jnp.int32), tx.init(split(params)))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"{fn} needs params (the current parameters) in update().")
        rest, inner = tx.update(split(updates), state.inner, split(params))
        new_online = optax.apply_updates(params[online], rest[online])
        m = momentum_schedule(state.count, total_steps, start, end)
        new_target = ema_update(params[target], new_online, m)
        rest[target] = jax.tree_util.tree_map(jnp.subtract, new_target, params[target])
        return rest, EMAState(state.count + 1, inner)

    return optax.GradientTransformation(init_fn, update_fn)


# ---- the energy and its latent ----


@dataclasses.dataclass(frozen=True)
class LatentConfig:
    """The latent z_m of each target block and its inner minimization (E13, E14 (4)).

    Attributes:
      dim: Z, the size of z per block; 0: no latent (F = E at z = 0, no inner loop).
      steps: SGD steps over z inside the loss; each costs about two predictor passes.
      lr: their step size. D is a mean over T D entries, so its gradient in z does not grow
        with the block or the width.
      radius: r, the ball ||z_m|| <= r z is projected onto after each step.
      l2: lam, the weight of ||z_m||^2 in E.

    Example:
      >>> from hjepa_jax import ijepa
      >>> ijepa.LatentConfig(dim=4).steps
      3
    """

    dim: int = 0
    steps: int = 3
    lr: float = 1.0
    radius: float = 1.0
    l2: float = 0.0

    def __post_init__(self):
        fn = "LatentConfig"
        _checks.integer(fn, "dim", self.dim, minimum=0, fix="0: no latent")
        _checks.integer(fn, "steps", self.steps, fix="e.g. steps=3")
        _checks.positive(fn, "lr", self.lr, "pass a step size > 0, e.g. 1.0")
        _checks.positive(fn, "radius", self.radius, "pass a radius > 0")
        _checks.non_negative(fn, "l2", self.l2, "pass a weight >= 0")


def prediction_energy(pred: jax.Array, target: jax.Array) -> jax.Array:
    """D(s_y, p) = mean over the last two axes of (s_y - p)^2: [..., T, D] -> [...], in
    float32 at least (bfloat16 predictions are cast up).

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> float(ijepa.prediction_energy(jnp.zeros((2, 3)), jnp.ones((2, 3))))
      1.0
    """
    fix = "pass predicted and target tokens [..., T, D] of one shape"
    if jnp.ndim(target) < 2:
        _checks.rank("prediction_energy", "target", target, 2, "[..., T, D]", fix)
    layout = "pred's shape [..., T, D]"
    _checks.shape("prediction_energy", "target", target, jnp.shape(pred), layout, fix)
    dtype = jnp.promote_types(jnp.result_type(pred, target), jnp.float32)
    return jnp.mean((target.astype(dtype) - pred.astype(dtype)) ** 2, axis=(-2, -1))


class BlockEnergies(NamedTuple):
    """Result of `free_energy`, one entry per image and target block.

    Attributes:
      energy: [B, M] F = E at the minimizing z (envelope gradient: to the predictor's params
        and the context tokens, and to the targets unless stopped).
      energy_z0: [B, M] E at z = 0 (no gradient), the energy without the latent.
      z: [B, M, Z] the minimizing latents (no gradient).
      trace: [B, M, steps] E before each inner step ([B, M, 1] without a latent).
    """

    energy: jax.Array
    energy_z0: jax.Array
    z: jax.Array
    trace: jax.Array


def free_energy(
    predict: Callable,
    pred_params,
    context: jax.Array,
    context_idx: jax.Array,
    target_idx: jax.Array,
    targets: jax.Array,
    cfg: LatentConfig,
) -> BlockEnergies:
    """F(x, y_m) = min over ||z_m|| <= r of E(x, y_m, z_m) for every image and block (E13).

    z_m starts at 0 and takes `cfg.steps` projected SGD steps in `hj.latent.minimize`
    (envelope gradient: memory does not grow with the steps), one minimization per image
    and block (jax.vmap), so each block has its own z. Jittable.

    Args:
      predict: `predict(pred_params, context [C, D], context_idx [C], target_idx [T],
        z [Z] | None) -> [T, D]`, one block of one image (None when cfg.dim = 0).
      pred_params: the predictor's parameters.
      context: [B, C, D] context tokens s_x.
      context_idx: [B, C] their patch indices.
      target_idx: [B, M, T] the blocks' patch indices.
      targets: [B, M, T, D] the blocks' target tokens s_y (stop their gradient for an EMA
        target).
      cfg: LatentConfig.

    Returns:
      BlockEnergies.

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> predict = lambda p, c, ci, ti, z: jnp.zeros((ti.shape[0], c.shape[1])) + z[0]
      >>> cfg = ijepa.LatentConfig(dim=1, steps=20, lr=0.5, radius=2.0)
      >>> ctx, ci, ti = jnp.zeros((1, 2, 3)), jnp.zeros((1, 2), int), jnp.zeros((1, 1, 4), int)
      >>> res = ijepa.free_energy(predict, None, ctx, ci, ti, jnp.ones((1, 1, 4, 3)), cfg)
      >>> float(res.energy_z0[0, 0]), round(float(res.energy[0, 0]), 4)
      (1.0, 0.0)
      >>> round(float(res.z[0, 0, 0]), 3)  # z = 1 carries the missing offset
      1.0
    """
    fn = "ijepa.free_energy"
    _checks.function(fn, "predict", predict, "(params, context, context_idx, target_idx, z)")
    if not isinstance(cfg, LatentConfig):
        _checks.broken(fn, "cfg", type(cfg).__name__, "a LatentConfig", "build one")
    fix = "pass context [B, C, D], context_idx [B, C], target_idx [B, M, T], targets [B, M, T, D]"
    _checks.rank(fn, "context", context, 3, "[B, C, D]", fix)
    b, c, d = context.shape
    _checks.shape(fn, "context_idx", context_idx, (b, c), "[B, C]", fix)
    _checks.rank(fn, "target_idx", target_idx, 3, "[B, M, T]", fix)
    if jnp.shape(target_idx)[0] != b:
        _checks.shape(fn, "target_idx", target_idx, (b, None, None), "[B, M, T]", fix)
    _checks.shape(fn, "targets", targets, (*jnp.shape(target_idx), d), "[B, M, T, D]", fix)
    t = target_idx.shape[-1]
    z0 = jnp.zeros((cfg.dim,), jnp.promote_types(context.dtype, jnp.float32))
    one = (context[0], context_idx[0], target_idx[0, 0], z0 if cfg.dim else None)
    call = "predict(pred_params, context[0], context_idx[0], target_idx[0, 0], z)"
    fix = "predict one block's tokens [T, D] from one image's context"
    _checks.model_output(fn, call, predict, (pred_params, *one), (t, d), fix)

    def energy(params, z, ctx, ci, ti, y):
        return prediction_energy(predict(params, ctx, ci, ti, z), y) + cfg.l2 * jnp.sum(z**2)

    opt = optax.chain(optax.sgd(cfg.lr), constraints.ball(cfg.radius))

    def one_block(ctx, ci, ti, y):
        if cfg.dim == 0:
            e = prediction_energy(predict(pred_params, ctx, ci, ti, None), y)
            return e, jax.lax.stop_gradient(e), z0, jax.lax.stop_gradient(e)[None]
        res = latent.minimize(
            energy, pred_params, z0, ctx, ci, ti, y, steps=cfg.steps, optimizer=opt
        )
        return res.energy, res.trace[0], res.z, res.trace

    per_image = jax.vmap(one_block, in_axes=(None, None, 0, 0))  # over the M blocks
    return BlockEnergies(*jax.vmap(per_image)(context, context_idx, target_idx, targets))


# ---- token statistics: VICReg's terms and the collapse diagnostics ----


def within_position(
    tokens: jax.Array, idx: jax.Array, num_patches: int
) -> tuple[jax.Array, jax.Array]:
    """Tokens centered on their position's batch mean: [B, K, D], idx [B, K] -> ([B K, D], dof).

    A token mixes what the image shows and where the patch is; statistics over all the
    tokens of a batch would count a position code as information (an encoder that outputs
    only pos would look uncollapsed, and predict its targets perfectly). Subtracting the
    mean over the batch's tokens at the same patch position keeps what differs between
    images. dof = B K - (positions present), the divisor of an unbiased pooled variance.

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> tokens = jnp.array([[[1.0], [5.0]], [[3.0], [5.0]]])  # position 0: 1, 3; position 1: 5, 5
      >>> c, dof = ijepa.within_position(tokens, jnp.array([[0, 1], [0, 1]]), 2)
      >>> c[:, 0].tolist(), int(dof)
      ([-1.0, 0.0, 1.0, 0.0], 2)
    """
    fn = "within_position"
    fix = "pass tokens [B, K, D] and their patch indices [B, K]"
    _checks.rank(fn, "tokens", tokens, 3, "[B, K, D]", fix)
    _checks.shape(fn, "idx", idx, tokens.shape[:2], "[B, K]", fix)
    n = _checks.integer(fn, "num_patches", num_patches, fix="pass N = (H / p) (W / p)")
    flat, pos = tokens.reshape(-1, tokens.shape[-1]), jnp.reshape(idx, -1)
    sums = jax.ops.segment_sum(flat, pos, num_segments=n)
    counts = jax.ops.segment_sum(jnp.ones_like(pos, flat.dtype), pos, num_segments=n)
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    dof = jnp.maximum(flat.shape[0] - jnp.sum(counts > 0), 1)
    return flat - means[pos], dof


def variance_covariance(centered: jax.Array, dof: jax.Array | int) -> tuple[jax.Array, jax.Array]:
    """VICReg's variance and covariance terms (E12) of centered tokens [K, D] (`within_position`):

        variance   = mean_d relu(1 - sqrt(C_dd + 1e-4))
        covariance = sum_{i != j} C_ij^2 / D,          C = centered^T centered / dof

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> v, c = ijepa.variance_covariance(jnp.zeros((4, 2)), 3)  # collapsed: variance 1 - 0.01
      >>> round(float(v), 3), float(c)
      (0.99, 0.0)
    """
    fix = "pass centered tokens [K, D] (see within_position)"
    _checks.rank("variance_covariance", "centered", centered, 2, "[K, D]", fix)
    d = centered.shape[-1]
    cov = centered.T @ centered / dof
    variance = jnp.mean(jax.nn.relu(1.0 - jnp.sqrt(jnp.diag(cov) + 1e-4)))
    covariance = (jnp.sum(cov**2) - jnp.sum(jnp.diag(cov) ** 2)) / d
    return variance, covariance


def token_statistics(centered: jax.Array, dof: jax.Array | int) -> dict[str, jax.Array]:
    """Collapse diagnostics of centered tokens [K, D]: {"std", "min_std", "rank"}.

    std, min_std: the mean and the smallest over dimensions of the pooled per-dimension std
    (-> 0 when collapsed); rank: the effective rank of their covariance, in [1, D]
    (`hj.collapse.effective_rank`). No gradient.

    Example:
      >>> import jax.numpy as jnp
      >>> from hjepa_jax import ijepa
      >>> s = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
      >>> {k: round(float(v), 3) for k, v in ijepa.token_statistics(s, 4).items()}
      {'std': 0.707, 'min_std': 0.707, 'rank': 2.0}
    """
    fix = "pass centered tokens [K, D] (see within_position), K >= 2"
    _checks.rank("token_statistics", "centered", centered, 2, "[K, D]", fix)
    centered = jax.lax.stop_gradient(centered)
    std = jnp.sqrt(jnp.sum(centered**2, axis=0) / dof)
    return {
        "std": jnp.mean(std),
        "min_std": jnp.min(std),
        "rank": collapse.effective_rank(centered),
    }


# ---- FLOPs ----


def transformer_flops(tokens: int, width: int, depth: int, mlp_ratio: float = 4.0) -> int:
    """Matmul FLOPs of `depth` pre-LN blocks (`hj.nn.TransformerBlock`) on `tokens` tokens:

        per block  2 K W (3W)  q, k, v      + 2 K^2 W  scores  + 2 K^2 W  weights x values
                 + 2 K W W     output proj  + 2 (2 K W H)      MLP, H = int(W mlp_ratio)

    counting 2 FLOPs per multiply-add; norms, softmax, GELU and adds (O(K W)) are left out.

    Example:
      >>> from hjepa_jax import ijepa
      >>> ijepa.transformer_flops(tokens=1, width=1, depth=1, mlp_ratio=1.0)
      16
    """
    fn = "transformer_flops"
    k = _checks.integer(fn, "tokens", tokens, fix="pass the tokens per image")
    w = _checks.integer(fn, "width", width, fix="pass the token width")
    depth = _checks.integer(fn, "depth", depth, minimum=0, fix="pass the number of blocks")
    _checks.positive(fn, "mlp_ratio", mlp_ratio, "pass the MLP width over the token width")
    hidden = int(w * mlp_ratio)
    per_block = 2 * k * w * 3 * w + 4 * k * k * w + 2 * k * w * w + 4 * k * w * hidden
    return depth * per_block


def vit_flops(
    image_size: int | tuple[int, int],
    patch: int,
    width: int,
    depth: int,
    mlp_ratio: float = 4.0,
    channels: int = 3,
    tokens: int | None = None,
) -> int:
    """Forward matmul FLOPs of `hj.nn.ViTTokens` on one image (2 per multiply-add).

        patch embedding  2 N (p^2 C) W      on all N = (H / p)(W / p) patches
        blocks           transformer_flops(K, W, depth, mlp_ratio)

    with K = `tokens` (the context encoder's C kept patches) or N. A training step costs about
    3x the forward of what is trained (forward + backward), 1x of a forward-only EMA target.

    Args:
      image_size: H (square) or (H, W), divisible by `patch`.
      patch: p; width: W; depth: blocks; mlp_ratio: MLP width over W; channels: C.
      tokens: tokens the blocks see (default N).

    Example:
      >>> from hjepa_jax import ijepa
      >>> ijepa.vit_flops(224, 16, 768, 12) / 1e9  # ViT-B/16: about 35 GFLOPs (17.5 GMACs)
      34.94...
    """
    fn = "vit_flops"
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2:
        _checks.broken(fn, "image_size", image_size, "H or (H, W)", "pass the image size")
    h, w = (_checks.integer(fn, "image_size", s, fix="pass the image size") for s in size)
    p = _checks.integer(fn, "patch", patch, fix="pass the patch side")
    if h % p or w % p:
        _checks.fail(fn, "patch", p, f"does not divide the image size {h}x{w}", "pick another")
    c = _checks.integer(fn, "channels", channels, fix="pass the image channels")
    n = (h // p) * (w // p)
    k = n if tokens is None else _checks.integer(fn, "tokens", tokens, fix="pass C <= N")
    embed = 2 * n * p * p * c * _checks.integer(fn, "width", width, fix="pass the token width")
    return embed + transformer_flops(k, width, depth, mlp_ratio)
