"""Exchanges between training processes that keep gradients exact; BatchNorm and dropout over the global batch.

Every rank backpropagates its own share of the objective and DDP averages the gradients. An exchange therefore
has to send each gradient back to the rank whose tensor produced it: :func:`gather_rows` concatenates every rank's
rows in rank order (backward: the sum of all ranks' gradients of the gathered tensor, sliced to this rank's rows)
and :func:`sum_over_processes` all-reduces (backward: the all-reduced gradient). With one process (or without an
initialised process group) both are the identity, so single-process code runs unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shutdown_process_group(wait: bool = True) -> None:
    """Destroy the process group (no-op on one process), after every process got here when ``wait``.

    A process that exits with its gloo threads still running can abort (``terminate called without an active
    exception``) while its peer is still talking to it; entry points call this last (``wait=False`` after an
    error, where the peers may never arrive)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = rank_and_world()
        ctx.rows = slice(rank * x.shape[0], (rank + 1) * x.shape[0])
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)  # (world * b, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)  # every rank's gradient of the gathered tensor
        return total[ctx.rows]


class _SumOverProcesses(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.contiguous().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """(b, ...) on every rank (same b everywhere) -> (world * b, ...) in rank order, gradients sent back."""
    return x if rank_and_world()[1] == 1 else _GatherRows.apply(x)


def sum_over_processes(x: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``x`` over all processes, gradients sent back."""
    return x if rank_and_world()[1] == 1 else _SumOverProcesses.apply(x)


def all_agree(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` is true on every process (every process must call it)."""
    if rank_and_world()[1] == 1:
        return flag
    bad = torch.tensor(0.0 if flag else 1.0, device=device)
    dist.all_reduce(bad)
    return float(bad) == 0.0


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm whose training statistics are those of the global batch (every rank's rows), so N processes
    normalise exactly as one process does on the same global batch. Works with gloo on CPU (torch's
    ``SyncBatchNorm`` needs a GPU). Evaluation and single-process training are plain ``BatchNorm1d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C) or (B, C, T)
        if not self.training or rank_and_world()[1] == 1:
            return super().forward(x)
        dims = [0, *range(2, x.ndim)]
        shape = [1, -1] + [1] * (x.ndim - 2)
        count = sum_over_processes(torch.tensor(float(x.numel() // x.shape[1]), device=x.device))
        mean = sum_over_processes(x.sum(dims)) / count  # (C,)
        centred = x - mean.view(shape)
        var = (
            sum_over_processes((centred * centred).sum(dims)) / count
        )  # (C,) biased, as BatchNorm normalises
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1).clamp_min(1.0))
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        count, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        if count is None or running_mean is None or running_var is None:  # statistics not tracked
            return
        count.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(count)
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * unbiased_var)


class GlobalBatchDropout(nn.Dropout):
    """Dropout whose mask is drawn for the global batch: every process draws the same (world * b, ...) mask from
    the torch RNG (seeded alike on every process and advanced alike) and keeps its own rows, so N processes drop
    what one process drops on the same global batch. On one CPU process it draws exactly what ``nn.Dropout``
    draws. Needs the same non-batch shape on every process (true for the encoder's pooled features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, ...)
        if not self.training or self.p == 0.0:
            return x
        rank, world = rank_and_world()
        keep = x.new_empty((world * x.shape[0], *x.shape[1:])).bernoulli_(1.0 - self.p)
        return x * keep[rank * x.shape[0] : (rank + 1) * x.shape[0]].div_(1.0 - self.p)


def use_global_dropout(module: nn.Module) -> nn.Module:
    """Swap every ``nn.Dropout`` inside ``module`` for :class:`GlobalBatchDropout` (in place, no new state)."""
    for m in module.modules():
        if type(m) is nn.Dropout:
            m.__class__ = GlobalBatchDropout
    return module


def use_global_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every ``BatchNorm1d`` inside ``module`` for :class:`GlobalBatchNorm1d` (same parameters, buffers and
    state-dict keys; the class is changed in place, so optimizers and references stay valid)."""
    for m in module.modules():
        if type(m) is nn.BatchNorm1d:
            m.__class__ = GlobalBatchNorm1d
    return module
