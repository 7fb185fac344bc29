"""Does a Two Rooms world model's state hold where the wall and its door are?

    python docs/layout_probe.py CKPT_DIR [--places 3000] [--seed 123]

CKPT_DIR is the `--ckpt-dir` of a `planning_two_rooms` run. The script encodes the agent at
random places (`two_rooms.random_position`) in random-wall layouts, then reads the wall's x
and its door's y back from the states with a ridge probe (`hj.probes.regression_r2`) and with
an MLP probe (scikit-learn's, 2 x 128 units, on standardized states), fitted on two thirds of
the places and scored on the rest. It prints the RMSE of each, in pixels, beside the label's
std as JSON. The labels serve this probe only: nothing here trains the model.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

import hjepa_jax as hj
from hjepa_jax.envs import two_rooms as tr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt_dir")
    parser.add_argument("--places", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    trained = hj.world_model.load(args.ckpt_dir)
    env = tr.EnvParams()
    k_layout, k_place = jax.random.split(jax.random.PRNGKey(args.seed))
    layouts = jax.vmap(tr.random_layout)(jax.random.split(k_layout, args.places))
    places = jax.vmap(lambda k, lay: tr.random_position(k, lay, env))(
        jax.random.split(k_place, args.places), layouts
    )
    encode = lambda q, lay: trained.model.encode(trained.params["enc"], q, lay)
    states = np.asarray(jax.jit(jax.vmap(encode))(places, layouts), np.float64)
    fit = 2 * args.places // 3
    scaled = StandardScaler().fit(states[:fit]).transform(states)
    out = {}
    for name, where in (("wall_x", layouts.wall_x[:, 0]), ("door_y", layouts.door_y[:, 0])):
        y = np.asarray(where, np.float64)
        _, ridge = hj.probes.regression_r2(states[:fit], y[:fit], states[fit:], y[fit:])
        mlp = MLPRegressor(hidden_layer_sizes=(128, 128), max_iter=500, random_state=0)
        guess = mlp.fit(scaled[:fit], y[:fit]).predict(scaled[fit:])
        out[name] = {
            "ridge_rmse": round(ridge, 2),
            "mlp_rmse": round(float(np.sqrt(np.mean((guess - y[fit:]) ** 2))), 2),
            "std": round(float(np.std(y[fit:])), 2),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
