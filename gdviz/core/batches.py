"""Mini-batches drawn from the data, reproducible from the seed.

Each epoch is a fresh permutation of the rows (seeded by the session's seed and the epoch
number), cut into ``rows // batch_size`` batches of ``batch_size`` rows; the few rows left
over at the end of an epoch wait for the next shuffle, so every step sees a batch of the
same size. The batch of a step depends only on the seed and the step number: a run paused,
saved, reloaded or raced against others sees the same batches as one run straight through.
"""

from __future__ import annotations

import torch

_EPOCH_MIX = 1_000_003  # spreads (seed, epoch) pairs over distinct generator seeds


class BatchSampler:
    """Row indices of each step's mini-batch, on the device."""

    def __init__(self, rows: int, batch_size: int, seed: int, device: torch.device):
        if not 1 <= batch_size < rows:
            raise ValueError("a mini-batch is at least one row and fewer than all of them")
        self.rows, self.batch_size, self.seed, self.device = rows, batch_size, int(seed), device
        self.per_epoch = rows // batch_size
        self._perms: dict[int, torch.Tensor] = {}

    def epoch_of(self, step: int) -> int:
        return step // self.per_epoch

    def permutation(self, epoch: int) -> torch.Tensor:
        perm = self._perms.get(epoch)
        if perm is None:
            if len(self._perms) > 4:  # runs at very different steps: keep a few epochs
                self._perms.clear()
            generator = torch.Generator().manual_seed((self.seed * _EPOCH_MIX + epoch) % 2**63)
            perm = torch.randperm(self.rows, generator=generator).to(self.device)
            self._perms[epoch] = perm
        return perm

    def indices(self, step: int) -> torch.Tensor:
        """The rows of step ``step``'s batch: a slice of its epoch's permutation."""
        start = (step % self.per_epoch) * self.batch_size
        return self.permutation(self.epoch_of(step))[start:start + self.batch_size]
