"""The PyTorch side of `benchmarks.jepa`'s ViT step: one I-JEPA train step of
facebookresearch/ijepa, timed on this machine's GPU (CUDA) where torch sees one, else its CPU.

    .venv-torch/bin/python benchmarks/ijepa_torch.py --ijepa-src DIR --out FILE [--image 64]
        [--patch 8] [--width 192] [--depth 6] [--heads 3] [--pred-width 96] [--pred-depth 3]
        [--batch 32] [--context-patches C] [--target-patches T] [--warmup 2] [--repeats 10]
        [--threads N] [--device cpu|cuda] [--serve]

`python -m benchmarks.jepa --torch --ijepa-src DIR` starts it in its own venv (.venv-torch,
torch 2.13.0 CPU): it imports no jax and no hjepa_jax, and hjepa_jax never depends on torch.
DIR is a checkout of facebookresearch/ijepa (CC-BY-NC, so none of its code is copied here):
DIR goes first on sys.path and its modules are imported: `src.models.vision_transformer`
(VisionTransformer, vit_predictor), `src.masks.multiblock` (MaskCollator), `src.masks.utils`
(apply_masks) and `src.utils.tensors` (repeat_interleave_batch).

The step follows the train step of the reference's `src/train.py` (float32, no autocast):
the target encoder (a copy of the context encoder, no grad) on every patch, layer norm over
the features, its tokens gathered at the 4 target blocks; the context encoder on the
context patches and the predictor once per block; smooth L1 loss, backward, AdamW step
(weight decay 0.04 on the weights, none on biases and norms, as its `init_opt`),
zero_grad, and the EMA of the target (momentum 0.996); `loss.item()` ends it (`float(loss)`
there).

Masks: the reference's MaskCollator (4 target blocks, scale 0.15-0.2, aspect 0.75-1.5; one
context block, scale 0.85-1.0, targets removed) on a batch of random images, which truncates
them to the batch's shortest. With --context-patches C / --target-patches T (the JAX side's
fixed sizes), collator batches are drawn until one has at least C context and T target
patches, then truncated to C and T, so both sides run the same token counts.

Timing: the first step timed apart (first_step_s), --warmup - 1 more untimed, then --repeats
timed ones (time.perf_counter around each step, which `loss.item()` ends on the GPU too);
min and median seconds, and cpu_per_wall, the process's CPU seconds over the wall seconds of
the timed steps (the cores it kept busy).
torch.set_num_threads(--threads). With --serve (how benchmarks.jepa runs it, to alternate
rounds of PyTorch steps with its JAX steps so that other jobs on a shared machine slow both
alike) it prints `@ijepa_torch {"ready": true}` after the warm-up, then for each line N read
from stdin times N steps and prints `@ijepa_torch [seconds, ...]`; any other line or the end
of stdin stops it. Writes the JSON to --out and prints it as the last line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

LEARNING_RATE, WEIGHT_DECAY, MOMENTUM = 1e-3, 0.04, 0.996
MASKS = {  # the recipe of benchmarks.jepa's ViT step (I-JEPA's)
    "pred_mask_scale": (0.15, 0.2),
    "aspect_ratio": (0.75, 1.5),
    "enc_mask_scale": (0.85, 1.0),
    "nenc": 1,
    "npred": 4,
    "allow_overlap": False,
}
MAX_MASK_DRAWS = 64
PROMPT = "@ijepa_torch "  # marks the --serve protocol's lines on stdout


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ijepa-src", type=Path, required=True, help="facebookresearch/ijepa checkout")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    for name, default in (
        ("image", 64),
        ("patch", 8),
        ("width", 192),
        ("depth", 6),
        ("heads", 3),
        ("pred-width", 96),
        ("pred-depth", 3),
        ("batch", 32),
        ("warmup", 2),
        ("repeats", 10),
        ("seed", 0),
    ):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--context-patches", type=int, help="truncate the context to C patches")
    p.add_argument("--target-patches", type=int, help="truncate each target block to T")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda where available")
    p.add_argument("--serve", action="store_true", help="time steps as stdin asks (see doc)")
    return p.parse_args(argv)


def draw_masks(collator, images, want_c, want_t):
    """A collator batch with >= want_c context and >= want_t target patches (else the draw
    with the most), truncated to them: (masks_enc, masks_pred, collator's (C, T), draws)."""
    best = None
    for draw in range(1, MAX_MASK_DRAWS + 1):
        _, enc, pred = collator(list(images))
        c, t = enc[0].shape[1], pred[0].shape[1]
        if best is None or (c, t) > best[2]:
            best = (enc, pred, (c, t), draw)
        if (want_c is None or c >= want_c) and (want_t is None or t >= want_t):
            best = (enc, pred, (c, t), draw)
            break
    enc, pred, (c, t), draw = best
    c_used = c if want_c is None else min(c, want_c)
    t_used = t if want_t is None else min(t, want_t)
    enc = [m[:, :c_used].contiguous() for m in enc]
    pred = [m[:, :t_used].contiguous() for m in pred]
    return enc, pred, (c, t), draw


def main(argv=None) -> dict:
    args = parse(argv)
    sys.path.insert(0, str(args.ijepa_src.resolve()))  # its modules are src.*

    import src.models.vision_transformer as vit
    import torch
    import torch.nn.functional as F
    from src.masks.multiblock import MaskCollator
    from src.masks.utils import apply_masks
    from src.utils.tensors import repeat_interleave_batch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":  # float32 products in TF32, as XLA's default precision on GPU
        torch.set_float32_matmul_precision("high")

    encoder = vit.VisionTransformer(
        img_size=[args.image],
        patch_size=args.patch,
        embed_dim=args.width,
        depth=args.depth,
        num_heads=args.heads,
        mlp_ratio=4,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
    )
    predictor = vit.vit_predictor(
        num_patches=encoder.patch_embed.num_patches,
        embed_dim=args.width,
        predictor_embed_dim=args.pred_width,
        depth=args.pred_depth,
        num_heads=args.heads,  # as the reference's init_model: the encoder's heads
    )
    encoder.to(device)
    predictor.to(device)
    target_encoder = copy.deepcopy(encoder)
    for p in target_encoder.parameters():
        p.requires_grad = False
    encoder.train()
    predictor.train()

    decay, no_decay = [], []
    for module in (encoder, predictor):
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if "bias" in name or p.ndim == 1 else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
    )

    size = (args.image, args.image)
    collator = MaskCollator(input_size=size, patch_size=args.patch, **MASKS)
    imgs = torch.rand(args.batch, 3, *size)
    masks_enc, masks_pred, own, draws = draw_masks(
        collator, imgs, args.context_patches, args.target_patches
    )
    imgs = imgs.to(device)
    masks_enc = [m.to(device) for m in masks_enc]
    masks_pred = [m.to(device) for m in masks_pred]
    batch = len(imgs)

    def train_step() -> float:
        with torch.no_grad():
            h = target_encoder(imgs)
            h = F.layer_norm(h, (h.size(-1),))
            h = apply_masks(h, masks_pred)
            h = repeat_interleave_batch(h, batch, repeat=len(masks_enc))
        z = encoder(imgs, masks_enc)
        z = predictor(z, masks_enc, masks_pred)
        loss = F.smooth_l1_loss(z, h)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            for q, k in zip(encoder.parameters(), target_encoder.parameters(), strict=True):
                k.mul_(MOMENTUM).add_(q.detach(), alpha=1.0 - MOMENTUM)
        return loss.item()

    state = {"loss": None, "cpu_s": 0.0}

    def timed(n: int) -> list[float]:
        times = []
        cpu = time.process_time()
        for _ in range(n):
            start = time.perf_counter()
            state["loss"] = train_step()
            times.append(time.perf_counter() - start)
        state["cpu_s"] += time.process_time() - cpu
        return times

    first_s = timed(1)[0]
    timed(args.warmup - 1)
    state["cpu_s"] = 0.0
    if args.serve:  # the parent says how many steps to time, in turn with its own
        print(PROMPT + json.dumps({"ready": True}), flush=True)
        times = []
        for line in sys.stdin:
            if not line.strip().isdigit():
                break
            round_times = timed(int(line))
            times += round_times
            print(PROMPT + json.dumps(round_times), flush=True)
    else:
        times = timed(args.repeats)
    loss = state["loss"]

    n_params = sum(p.numel() for m in (encoder, predictor) for p in m.parameters())
    result = {
        "framework": "pytorch",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "interop_threads": torch.get_num_interop_threads(),
        "median_s": statistics.median(times) if times else None,
        "min_s": min(times) if times else None,
        "times_s": times,
        "cpu_per_wall": state["cpu_s"] / sum(times) if times else None,
        "repeats": len(times),
        "warmup": args.warmup,
        "first_step_s": first_s,
        "context_patches": masks_enc[0].shape[1],
        "target_patches": masks_pred[0].shape[1],
        "collator_sizes": list(own),
        "mask_draws": draws,
        "trained_params": n_params,
        "loss": loss,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
