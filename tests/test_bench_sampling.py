"""benchmarks.sampling runs and writes every part (a smoke run: speed is never asserted here,
only that the numbers exist, are positive, and that FISTA is no worse than ISTA at equal steps)."""

import json

from benchmarks import sampling

METHODS = {
    ("energy_only", "none"),
    ("hinge", "noise x1"),
    ("log_loss", "noise x1"),
    ("square_square", "noise x1"),
    ("square_exponential", "noise x1"),
    ("nll", "noise x2"),
    ("nll", "langevin K=2 x S=3"),
    ("infonce", "in-batch"),
    ("vicreg", "none"),
}


def test_sampling_benchmark_writes_every_part(tmp_path, capsys):
    # fmt: off
    result = sampling.main(["--quick", "--repeats", "1", "--max-batch", "256",
                            "--chain-steps", "5", "--sparse-steps", "30", "--negatives", "2",
                            "--train-langevin-steps", "3", "--out", str(tmp_path)])
    # fmt: on
    assert json.loads((tmp_path / "sampling.json").read_text()) == json.loads(json.dumps(result))
    printed = capsys.readouterr().out
    assert "1. Langevin chains" in printed and "3. one adam train step" in printed
    assert result["device"]["count"] >= 1 and result["jax_version"]

    chains = result["langevin_chains"]
    assert [r["chains"] for r in chains] == [256]
    for r in chains:
        assert r["steps"] == 5
        for k in ("median_s", "min_s", "chains_per_s", "chain_steps_per_s", "sgd_s"):
            assert r[k] > 0, k

    sparse = {(r["method"], r["batch"]): r for r in result["sparse_coding"]}
    batches = (256,)
    assert set(sparse) == {(m, b) for m in ("ISTA", "FISTA") for b in batches}
    for r in sparse.values():
        assert r["steps"] == 30 and r["iterations_per_s"] > 0 and r["median_s"] > 0
        assert r["energy_mean"] > 0 and r["energy_gap"] > -1e-4  # the reference is ~optimal
    for b in batches:
        assert sparse[("FISTA", b)]["energy_mean"] <= sparse[("ISTA", b)]["energy_mean"]

    rows = result["train_step"]
    assert {(r["method"], r["negatives"]) for r in rows} == METHODS
    assert rows[0]["method"] == "energy_only" and rows[0]["vs_baseline"] == 1.0
    for r in rows:
        assert r["median_s"] > 0 and r["us_per_example"] > 0
        langevin = r["negatives"].startswith("langevin")
        assert r["sampler_grad_evals"] == (2 * 3 if langevin else 0)
