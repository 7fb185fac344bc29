"""Run by tests/test_sharding.py in a fresh process with 8 forced CPU devices.

python tests/sharding_worker.py OUT_DIR
    5 steps of a small ViT JEPA (hjepa_jax.models.digits_jepa, encoder "vit") replicated
    (mesh data=8) and with FSDP (mesh fsdp=8), the FSDP run from an init function and
    checkpointing to OUT_DIR/ckpt; the FSDP checkpoint resumed on another mesh (data=2,
    fsdp=4); writes OUT_DIR/params_{replicated,fsdp,fsdp_resumed}.npz and OUT_DIR/result.json
    (summaries, and the sharding of one kernel and its Adam moment).
"""

import sys

from forced_devices import force

force(8)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from sharding_case import flat_params, run  # noqa: E402


def main():
    out = Path(sys.argv[1])
    result = {}
    replicated = run("data=8")
    fsdp = run("fsdp=8", ckpt_dir=str(out / "ckpt"), lazy=True)
    resumed = run("data=2,fsdp=4", ckpt_dir=str(out / "ckpt"))
    for name, res in (("replicated", replicated), ("fsdp", fsdp), ("fsdp_resumed", resumed)):
        np.savez(out / f"params_{name}.npz", **flat_params(res.state.params))
        result[name] = res.summary
    kernel = fsdp.state.params["enc"]["params"]["block_0"]["mlp_in"]["kernel"]
    mu = fsdp.state.opt_state[0].trace["enc"]["params"]["block_0"]["mlp_in"]["kernel"]
    bias = fsdp.state.params["enc"]["params"]["block_0"]["mlp_in"]["bias"]
    result["specs"] = {
        "kernel": [kernel.shape, str(kernel.sharding.spec)],
        "mu": [mu.shape, str(mu.sharding.spec)],
        "bias": [bias.shape, str(bias.sharding.spec)],
        "kernel_shard": kernel.addressable_shards[0].data.shape,
    }
    result["devices"] = jax.device_count()
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
