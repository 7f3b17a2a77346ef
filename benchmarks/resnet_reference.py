"""A PyTorch reference for AZL-ResNet's experiment: is pacsim's ResNet gap its own?

pacsim's ResNet on ``resnet-parity`` v2 (m = 500, N = 1000) reaches a test error (squared error
summed over the 8 outputs) of about 0.96, the paper about 0.16 (docs/experiments.md, section 1).
This script trains the same task the way the paper describes it, written independently of
pacsim in PyTorch: ``torch.optim.SGD`` (momentum 0.9, ``weight_decay``), mini-batches of 50,
the learning rate divided by 10 at half the epochs (``StepLR``), PyTorch's default
``MSELoss`` (mean over the batch **and the outputs**), float64. Two forms of the ResNet
(arXiv 1905.10337: eq. 2.1 and its Sec. 6 form), W, b1, V (or U), b2 trained and A fixed:

* ``bottleneck`` (pacsim's, the analysed form): ``out = A (h1 + relu(V A h1 + b2))``,
  ``h1 = relu(W x + b1)``, ``V`` of shape (m, k);
* ``full`` (the headline eq. 2.1): ``out = A (h1 + relu(U h1 + b2))``, ``U`` of shape (m, m).

Initialisation: the paper's experiment preset, ``W, b1 ~ N(0, 1/d)``, ``A, V, U, b2 ~
N(0, 1/m)``. Targets: ``F_r = x_{2r-1} x_{2r}``, ``G`` cyclic (pacsim's reading,
``G_r = y_r y_{r+1} y_{r+2} y_{r+3}``) or shared (``G_r = (-1)^r y1 y2 y3 y4``), alpha = 0.3.
It prints the test error on 4000 fresh samples and the training error for every (lr, weight
decay) pair; the paper's numbers are the best test error over such a grid (pacsim's choose on
a validation set).

Run by hand (torch is optional and never a pacsim dependency; about 20 s per bottleneck run of
200 epochs at m = 500 on one core, 3x that for ``full``)::

    python benchmarks/resnet_reference.py [--form bottleneck full] [--m 500] [--epochs 200]
        [--lr 0.1 0.5] [--wd 0.0005 0.005] [--g cyclic] [--seed 0]

Each line also gives the training's wall time and its roofline (``benchmarks/_roofline.py``,
ceilings measured at the start of the run): achieved GFLOP/s and the fraction of the GEMM
peak, counting ``3 x`` the forward products per sample (forward, and the two backward
products per layer) over every batch: ``6 (m D + 2 m K) + 6 m K`` flops per sample for the
bottleneck form, ``6 (m D + m K + m^2)`` for the full form.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from _roofline import Roofline, limit_threads

K, D, ALPHA, N_TRAIN, N_TEST, BATCH = 8, 30, 0.3, 1000, 4000, 50


def data(n: int, g: torch.Generator, pattern: str):
    """``n`` inputs uniform on {-1, 1}^30 and labels ``F + alpha G(F)``, float64."""
    x = torch.where(torch.randn(n, D, generator=g) >= 0, 1.0, -1.0).double()
    F = x[:, 0 : 2 * K : 2] * x[:, 1 : 2 * K : 2]
    if pattern == "cyclic":
        G = torch.stack([F[:, [(r + j) % K for j in range(4)]].prod(1) for r in range(K)], 1)
    else:
        signs = torch.tensor([(-1.0) ** r for r in range(1, K + 1)], dtype=torch.double)
        G = F[:, :4].prod(1, keepdim=True) * signs
    return x, F + ALPHA * G


def run(form: str, m: int, lr: float, wd: float, epochs: int, seed: int, pattern: str):
    """Train one network; return (test error, training error), squared error summed over the
    outputs and averaged over samples."""
    g = torch.Generator().manual_seed(seed)
    X, Y = data(N_TRAIN, g, pattern)
    Xt, Yt = data(N_TEST, g, pattern)

    def normal(*shape, var):
        return torch.randn(*shape, generator=g, dtype=torch.double) * math.sqrt(var)

    W = normal(m, D, var=1 / D).requires_grad_()
    b1 = normal(m, var=1 / D).requires_grad_()
    A = normal(K, m, var=1 / m)
    V = normal(m, K if form == "bottleneck" else m, var=1 / m).requires_grad_()
    b2 = normal(m, var=1 / m).requires_grad_()

    def net(x):
        h1 = torch.relu(x @ W.T + b1)
        inner = h1 @ A.T if form == "bottleneck" else h1
        return (h1 + torch.relu(inner @ V.T + b2)) @ A.T

    opt = torch.optim.SGD([W, b1, V, b2], lr=lr, momentum=0.9, weight_decay=wd)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 2), gamma=0.1)
    loss_fn = torch.nn.MSELoss()
    for _ in range(epochs):
        perm = torch.randperm(N_TRAIN, generator=g)
        for s in range(0, N_TRAIN, BATCH):
            idx = perm[s : s + BATCH]
            opt.zero_grad()
            loss_fn(net(X[idx]), Y[idx]).backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        return (float(((net(Xt) - Yt) ** 2).sum(1).mean()),
                float(((net(X) - Y) ** 2).sum(1).mean()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", nargs="+", choices=("bottleneck", "full"),
                        default=["bottleneck"])
    parser.add_argument("--m", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--wd", type=float, nargs="+", default=[0.0005, 0.005])
    parser.add_argument("--g", choices=("cyclic", "shared"), default="cyclic")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    limit_threads(1)
    roof = Roofline.measure(dtypes=("float64",))
    print(roof.header())
    print(f"torch {torch.__version__} | resnet-parity v2, G {args.g}, alpha {ALPHA}, "
          f"N = {N_TRAIN}, m = {args.m}, {args.epochs} epochs, seed {args.seed}; "
          f"\"G not learned\" floor {K * ALPHA**2:.2f}")
    for form in args.form:
        for lr in args.lr:
            for wd in args.wd:
                t0 = time.perf_counter()
                test, train = run(form, args.m, lr, wd, args.epochs, args.seed, args.g)
                wall = time.perf_counter() - t0
                m = args.m
                per_sample = (6 * (m * D + 2 * m * K) + 6 * m * K if form == "bottleneck"
                              else 6 * (m * D + m * K + m * m))
                flops = per_sample * N_TRAIN * args.epochs
                gflops = flops / wall / 1e9
                print(f"{form:>10} lr {lr:<6g} wd {wd:<7g} test error {test:.3f} "
                      f"(train {train:.3f}) | {wall:.1f} s, {gflops:.1f} GFLOP/s = "
                      f"{100 * gflops / roof.peak['float64']:.0f}% of GEMM peak", flush=True)


if __name__ == "__main__":
    main()
