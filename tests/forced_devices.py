"""Force n host (CPU) devices in a worker process: call before jax is imported."""

import os


def force(n: int) -> None:
    """Append --xla_force_host_platform_device_count=n to XLA_FLAGS, after any flags the
    process inherited from the tests."""
    flag = f" --xla_force_host_platform_device_count={n}"
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + flag
