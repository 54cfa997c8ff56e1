"""Jaccard-SigLIP vs plain SigLIP: forward + backward time at B = 256 and 1024, D = 256, in one run.

Usage: ``python benchmarks/bench_loss.py [--repeats 20] [--device cpu]``. Prints one ratio per batch size
(target <= 1.15x: the Jaccard targets are one (B, L) x (L, B) matmul next to the (B, D) x (D, B) logits matmul).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from encoder.loss import contrastive_loss, pair_logits


def _step(name: str, ecg: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor) -> None:
    scale = torch.tensor(math.log(10.0), device=ecg.device, requires_grad=True)
    bias = torch.tensor(-10.0, device=ecg.device, requires_grad=True)
    e, t = F.normalize(ecg, dim=-1), F.normalize(txt, dim=-1)
    loss = contrastive_loss(name, pair_logits(e, t, scale, bias), labels)
    loss.backward()


def time_pair(b: int, d: int, n_labels: int, repeats: int, device: str) -> tuple[float, float]:
    """Median step time of (siglip, jaccard_siglip), alternating step by step so load drift hits both alike."""
    g = torch.Generator().manual_seed(0)
    ecg = torch.randn(b, d, generator=g).to(device).requires_grad_(True)
    txt = torch.randn(b, d, generator=g).to(device).requires_grad_(True)
    labels = (torch.rand(b, n_labels, generator=g) < 0.2).float().to(device)
    times: dict[str, list[float]] = {"siglip": [], "jaccard_siglip": []}
    for i in range(repeats + 3):
        for name in times if i % 2 == 0 else reversed(list(times)):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            _step(name, ecg, txt, labels)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 3:  # warm-up
                times[name].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return med["siglip"], med["jaccard_siglip"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument(
        "--labels", type=int, default=71, help="label-set width (71 = PTB-XL 'all' statements)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(
        f"device={args.device} D={args.dim} L={args.labels} threads={torch.get_num_threads()} (median of {args.repeats})"
    )
    for b in (256, 1024):
        p, j = time_pair(b, args.dim, args.labels, args.repeats, args.device)
        print(
            f"B={b:5d}  siglip {p * 1e3:8.2f} ms  jaccard_siglip {j * 1e3:8.2f} ms  ratio {j / p:.3f}x (target <= 1.15x)"
        )


if __name__ == "__main__":
    main()
