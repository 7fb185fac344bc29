"""Benchmarks of hjepa_jax: `python -m benchmarks.<name>`, results as JSON under out/bench/."""
