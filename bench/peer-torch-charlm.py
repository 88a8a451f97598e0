#!/usr/bin/env python3
"""PyTorch's side of bench/charlm.ts: the char-LM example's training pass, written the way PyTorch users write
truncated BPTT (a stateful loop that detaches the state at every window), timed here.

    python3 peer-torch-charlm.py SPEC.json

SPEC (written by the TypeScript side): {"V", "H", "B", "k1", "k2", "chunk", "lr", "threads", "codes" (the pass's
text as class indices), "weights": [kernel [V,4H], recurrentKernel [H,4H], bias [4H], dense kernel [H,V],
dense bias [V]] (Keras layout, longshort's initial weights)}. The network: nn.LSTM(V, H, batch_first=True)
(PyTorch's gate order i, f, g, o is Keras's, so weight_ih = kernelᵀ), nn.Linear(H, V) on every step,
cross-entropy from the logits (log-softmax + NLL, the mean over the window's B·k1 characters: longshort's softmax
head with sparse categorical cross-entropy), Adam(lr) in Keras's form (ε 1e-7 before the bias correction, so
PyTorch's eps is set to 1e-7 / sqrt(1 − β2^t) at step t), float32, on SPEC's "threads".

The text is cut into B streams of L + 1 characters; a pass feeds them in chunks of `chunk` steps (one-hot inputs
built per chunk, as the TypeScript side does) and makes one update per window of k1 steps, carrying the state
from window to window and resetting it at the end of the pass:
- k2 = k1: the window runs from the carried state, detached (`h.detach()`): the loop every tutorial shows.
- k2 > k1: the gradient reaches k2 − k1 steps into the window before. Autograd cannot backpropagate through
  activations made with weights an optimizer has since changed in place (it refuses: "modified by an inplace
  operation"), so the loop keeps the state detached k2 − k1 steps before the window and runs those steps again
  with the current weights, then the window; the loss counts the window's k1 steps. (longshort keeps the earlier
  forward's activations instead, the Williams & Peng algorithm: the same reach, k2 − k1 fewer forward steps.)

Reads commands on stdin, one per line, and answers each with one JSON line:
- "check": the first three windows' losses from the given weights (they change the weights: run it first, once);
- "epoch": one timed pass over the text, {"ms", "windows", "loss"} (the mean window loss).
"""
import json
import importlib.util
import math
import os
import sys
import time

import torch
from torch import nn

# peer-torch.py's blas(): which BLAS this process loaded (its name has a hyphen, so it is loaded by path).
_spec = importlib.util.spec_from_file_location("peer_torch", os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer-torch.py"))
_peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_peer)
blas = _peer.blas


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    V, H, B, k1, k2, chunk = spec["V"], spec["H"], spec["B"], spec["k1"], spec["k2"], spec["chunk"]
    dtype = torch.float32
    lstm = nn.LSTM(V, H, batch_first=True).to(dtype)
    head = nn.Linear(H, V).to(dtype)
    K, R, b, Wd, bd = (torch.tensor(w, dtype=dtype) for w in spec["weights"])
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(K.T)
        lstm.weight_hh_l0.copy_(R.T)
        lstm.bias_ih_l0.copy_(b)
        lstm.bias_hh_l0.zero_()
        head.weight.copy_(Wd.T)
        head.bias.copy_(bd)
    # Keras's LSTM has one bias: bias_hh stays at zero, out of the optimizer (trained, Adam would move the sum of
    # the two biases twice as far per step).
    lstm.bias_hh_l0.requires_grad_(False)
    params = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0] + list(head.parameters())
    opt = torch.optim.Adam(params, lr=spec["lr"], eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    codes = torch.tensor(spec["codes"], dtype=torch.long)
    L = (len(codes) - 1) // B
    starts = torch.arange(B) * L
    steps_done = [0]  # Adam's t
    back = k2 - k1  # steps run again before each window (0: the plain detach loop)

    def batch_of(t0, T):
        """One chunk: one-hot inputs (B, T, V) of codes[start + t0 + t], labels (B, T) of the next character."""
        idx = starts[:, None] + t0 + torch.arange(T)[None, :]
        x = torch.zeros(B, T, V, dtype=dtype)
        x.scatter_(2, codes[idx][:, :, None], 1.0)
        return x, codes[idx + 1]

    def run_pass(max_windows=None):
        """One pass; returns the window losses (before each update)."""
        zero = torch.zeros(1, B, H, dtype=dtype)
        state = (zero, zero)      # k2 = k1: the carried state at the open window's start, detached
        hist_state = state        # k2 > k1: the state before the kept steps, detached
        hist_x = None             # ...and the kept steps' inputs, (B, ≤ back, V)
        losses = []
        pending_x, pending_y = [], []
        c = 0
        while c < L:
            T = min(chunk, L - c)
            x, y = batch_of(c, T)
            c += T
            at = 0
            while at < T:
                n = min(k1 - sum(p.shape[1] for p in pending_x), T - at)
                pending_x.append(x[:, at:at + n])
                pending_y.append(y[:, at:at + n])
                at += n
                steps = sum(p.shape[1] for p in pending_x)
                if steps < k1 and not (c >= L and at >= T):
                    continue
                wx, wy = torch.cat(pending_x, 1), torch.cat(pending_y, 1)
                pending_x, pending_y = [], []
                opt.zero_grad()
                if back:
                    # The kept steps again, then the window, from the state before the kept steps; the next
                    # window's history (the last `back` of these steps) starts at step j, so the run splits there.
                    seq = wx if hist_x is None else torch.cat([hist_x, wx], 1)
                    h = seq.shape[1] - wx.shape[1]
                    j = max(0, seq.shape[1] - back)
                    outs = []
                    s_j = hist_state
                    if j > 0:
                        out_a, s_j = lstm(seq[:, :j], hist_state)
                        outs.append(out_a)
                    out_b, s1 = lstm(seq[:, j:], s_j)
                    outs.append(out_b)
                    out = torch.cat(outs, 1)[:, h:] if len(outs) > 1 else out_b[:, h:]
                    hist_state = tuple(s.detach() for s in s_j)
                    hist_x = seq[:, j:]
                else:
                    out, s1 = lstm(wx, state)
                loss = loss_fn(head(out).reshape(-1, V), wy.reshape(-1))
                loss.backward()
                # Keras's Adam ("epsilon hat", longshort's): ε after the bias correction is ε / sqrt(1 − β2^t).
                steps_done[0] += 1
                opt.param_groups[0]["eps"] = 1e-7 / math.sqrt(1 - 0.999 ** steps_done[0])
                opt.step()
                losses.append(loss.item())
                state = tuple(s.detach() for s in s1)
                if max_windows is not None and len(losses) >= max_windows:
                    return losses
        return losses

    print(json.dumps({"ready": True, "torch": torch.__version__, "blas": blas(), "L": L}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "check":
            print(json.dumps({"losses": run_pass(3)}), flush=True)
        elif cmd == "epoch":
            t0 = time.perf_counter()
            losses = run_pass()
            ms = (time.perf_counter() - t0) * 1000
            print(json.dumps({"ms": ms, "windows": len(losses), "loss": sum(losses) / len(losses)}), flush=True)
        elif cmd == "quit":
            return
        else:
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)


if __name__ == "__main__":
    main()
