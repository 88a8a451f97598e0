#!/usr/bin/env python3
"""PyTorch's side of bench/peer-torch.ts: the same training step as longshort's train-step bench, timed here.

    python3 peer-torch.py SPEC.json

SPEC (written by the TypeScript side): {"B", "T", "I", "H", "dtype": "float32" | "float64", "budget_ms",
"weights": [kernel [I,4H], recurrentKernel [H,4H], bias [4H], dense kernel [H,1], dense bias [1]] (Keras
layout, longshort's initial weights), "x" [B,T,I], "y" [B,1]}. The network: nn.LSTM(I, H, batch_first=True)
(PyTorch's gate order i, f, g, o is Keras's, so weight_ih = kernelᵀ), then nn.Linear(H, 1) on the last step,
binary cross-entropy from the logit, Adam(lr 1e-3, eps 1e-7), on SPEC's "threads" (default 1; the TypeScript side
sets OPENBLAS_NUM_THREADS and OMP_NUM_THREADS to match). Prints one JSON line: the loss of the given weights on
the batch (the TypeScript side compares it with its own), the timed steps in ms, and the BLAS library loaded.
"""
import json
import sys
import time

import torch
from torch import nn



def blas():
    """The BLAS library this process loaded (PyTorch's generic build calls whatever libblas.so.3 points to)."""
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        return "unknown"
    for name in ("openblas", "mkl", "blis", "atlas"):
        if "lib" + name in maps:
            return name
    return "reference" if "libblas" in maps else "none loaded"


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec.get("threads", 1))
    dtype = torch.float32 if spec["dtype"] == "float32" else torch.float64
    I, H = spec["I"], spec["H"]
    lstm = nn.LSTM(I, H, batch_first=True).to(dtype)
    head = nn.Linear(H, 1).to(dtype)
    K, R, b, Wd, bd = (torch.tensor(w, dtype=dtype) for w in spec["weights"])
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(K.T)
        lstm.weight_hh_l0.copy_(R.T)
        lstm.bias_ih_l0.copy_(b)
        lstm.bias_hh_l0.zero_()
        head.weight.copy_(Wd.T)
        head.bias.copy_(bd)
    x = torch.tensor(spec["x"], dtype=dtype)
    y = torch.tensor(spec["y"], dtype=dtype)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        opt.zero_grad()
        out, _ = lstm(x)
        loss = loss_fn(head(out[:, -1, :]), y)
        loss.backward()
        opt.step()
        return loss.item()

    with torch.no_grad():
        out, _ = lstm(x)
        first = loss_fn(head(out[:, -1, :]), y).item()
    budget = spec["budget_ms"] / 1000
    start = time.perf_counter()
    step()
    while time.perf_counter() - start < budget / 3:  # warm-up
        step()
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < budget or len(samples) < 3:
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"loss": first, "samples": samples, "torch": torch.__version__, "blas": blas()}))


if __name__ == "__main__":
    main()
