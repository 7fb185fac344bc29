"""Batches: epoch-wise shuffled, host-sharded, resumable batches from a random-access source.

For data too big for memory (a tfds data source) as well as for dicts of arrays:

    it = Batches(source, 256, seed=0)          # 256 = the global batch, over all hosts
    for batch in it: ...                       # this host's [256 / process_count, ...] rows
    state = it.get_state()                     # {"epoch": 3, "step": 17, ...}, JSON-able
    it.set_state(state)                        # the next batches are those that followed

Order: epoch e visits the rows in `permutation(e)`, a fixed function of (seed, e); global batch
s of epoch e is rows [s*B, (s+1)*B) of it. Host i of P takes the i-th of P contiguous blocks of
each global batch, so the global batch does not depend on P and the hosts' blocks, concatenated
in process order (what `jax.make_array_from_process_local_data` does), are the one-host batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hjepa_jax.data.sources import read

__all__ = ["Batches"]

_PERMUTATION, _AUGMENT = 0, 1  # independent random streams of the seed


def _num_rows(source) -> int:
    if isinstance(source, dict):
        sizes = set()

        def visit(tree):
            for v in tree.values():
                visit(v) if isinstance(v, dict) else sizes.add(len(v))

        visit(source)
        if len(sizes) != 1:
            raise ValueError(f"arrays of a dict source differ in length: {sorted(sizes)}")
        return sizes.pop()
    return len(source)


class Batches:
    """Iterator over batches (dicts of numpy arrays) of a random-access source.

    Args:
      source: a dict of arrays with a common leading axis [N, ...] (nested dicts allowed), or
        a random-access sequence of rows (`len`, `source[i]` -> dict), e.g. a tfds data source.
      batch_size: the global batch size B (all hosts together); divisible by process_count.
      seed: fixes the permutation of every epoch and the augmentation draws.
      shuffle: False visits rows in order every epoch.
      drop_remainder: drop the last N % B rows of each epoch (else a smaller last batch,
        split as evenly as possible over hosts).
      process_index, process_count: this host and the number of hosts; default
        `jax.process_index()` and `jax.process_count()`.
      augment: `augment(rng: np.random.Generator, batch) -> batch`, applied to this host's
        batch with a generator that is a fixed function of (seed, epoch, step, process_index).
      num_epochs: stop after this many epochs; None (default) runs forever.

    Attributes:
      global_batch_size: B.
      local_batch_size: B / process_count, this host's rows per batch.
      steps_per_epoch: N // B (or ceil(N / B) without drop_remainder).
    """

    def __init__(
        self,
        source,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        drop_remainder: bool = True,
        process_index: int | None = None,
        process_count: int | None = None,
        augment: Callable[[np.random.Generator, Any], Any] | None = None,
        num_epochs: int | None = None,
    ):
        if process_index is None or process_count is None:
            import jax  # only for the defaults

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        if batch_size <= 0 or batch_size % process_count:
            raise ValueError(
                f"batch_size {batch_size} must be a positive multiple of process_count "
                f"{process_count}"
            )
        self._source = source
        self.num_examples = _num_rows(source)
        full, rest = divmod(self.num_examples, batch_size)
        self.steps_per_epoch = full if drop_remainder or not rest else full + 1
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{self.num_examples} examples make no batch of {batch_size} (drop_remainder)"
            )
        self.global_batch_size = batch_size
        self.local_batch_size = batch_size // process_count
        self.seed = int(seed)
        self.shuffle = shuffle
        self.process_index = process_index
        self.process_count = process_count
        self.augment = augment
        self.num_epochs = num_epochs
        self._epoch = 0
        self._step = 0
        self._cached_permutation: tuple[int, np.ndarray] | None = None

    # ---- order ----

    def permutation(self, epoch: int) -> np.ndarray:
        """[N] the order in which epoch `epoch` visits the rows (arange if not shuffled)."""
        if not self.shuffle:
            return np.arange(self.num_examples)
        if self._cached_permutation is None or self._cached_permutation[0] != epoch:
            rng = np.random.default_rng([self.seed, _PERMUTATION, epoch])
            self._cached_permutation = (epoch, rng.permutation(self.num_examples))
        return self._cached_permutation[1]

    def global_indices(self, epoch: int, step: int) -> np.ndarray:
        """[B] (or fewer at an epoch's end) rows of global batch `step` of epoch `epoch`."""
        b = self.global_batch_size
        return self.permutation(epoch)[step * b : (step + 1) * b]

    def local_indices(self, epoch: int, step: int) -> np.ndarray:
        """This host's block of `global_indices(epoch, step)`."""
        rows = self.global_indices(epoch, step)
        return np.array_split(rows, self.process_count)[self.process_index]

    # ---- iteration ----

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        if self.num_epochs is not None and self._epoch >= self.num_epochs:
            raise StopIteration
        epoch, step = self._epoch, self._step
        batch = read(self._source, self.local_indices(epoch, step))
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, _AUGMENT, epoch, step, self.process_index])
            batch = self.augment(rng, batch)
        self._step += 1
        if self._step == self.steps_per_epoch:
            self._epoch, self._step = self._epoch + 1, 0
        return batch

    # ---- resuming ----

    def get_state(self) -> dict[str, int]:
        """The position of the next batch: {"epoch", "step", "seed", "global_batch_size"}."""
        return {
            "epoch": self._epoch,
            "step": self._step,
            "seed": self.seed,
            "global_batch_size": self.global_batch_size,
        }

    def set_state(self, state: dict[str, int]) -> None:
        """Continue from `get_state()`'s position (on any number of hosts).

        Raises:
          ValueError: the state's seed or global batch size differ from this iterator's, or
            its step is outside the epoch.
        """
        for key in ("seed", "global_batch_size"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(f"state has {key}={state[key]}, iterator {getattr(self, key)}")
        epoch, step = int(state["epoch"]), int(state["step"])
        if epoch < 0 or not 0 <= step < self.steps_per_epoch:
            raise ValueError(f"epoch {epoch} / step {step} outside [0, {self.steps_per_epoch})")
        self._epoch, self._step = epoch, step
