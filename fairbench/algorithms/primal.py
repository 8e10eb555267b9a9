"""The primal step of the primal–dual methods: SGD or Adam, and the step-size rules of the SGD-type methods.

A primal–dual method computes a primal gradient ``g`` (the gradient of its Lagrangian-type
surrogate in ``x``) and hands it to a :class:`PrimalStep`, which moves ``x`` in place:

- ``sgd``:  ``x <- x - lr (g + wd x)``  (with ``wd = 0`` exactly ``x -= lr * g``);
- ``adam`` (Kingma & Ba 2015, as ``torch.optim.Adam``: L2 weight decay added to the gradient)::

      g   = g + wd x
      m   = beta1 m + (1 - beta1) g,        v = beta2 v + (1 - beta2) g^2
      x   = x - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The newer benchmark of humancompatible-train runs Adam as the primal optimizer of every
method; ``algo.primal=adam`` is that setting. The state (``m``, ``v``) has ``x``'s shape, so
the step is elementwise and runs unchanged on stacked seeds.

Step-size rules (:func:`step_size`) for the SGD-type methods: ``constant`` (``lr``) or
``sqrt`` (``lr / sqrt(k + 1)`` at iteration ``k``, counted from 0).
"""

from __future__ import annotations

import math

import numpy as np

from fairbench.errors import check, check_in, check_positive

PRIMALS = ("sgd", "adam")
STEP_RULES = ("constant", "sqrt")


def check_primal(primal: str, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """Range checks of the primal optimizer's settings (``algo.<key>``, exit 2)."""
    check_in("algo.primal", primal, PRIMALS)
    for key, value in (("beta1", beta1), ("beta2", beta2)):
        check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0,
              f"algo.{key}", value, "must be a number in [0, 1)")
    check_positive("algo.eps", eps)
    check_positive("algo.weight_decay", weight_decay, allow_zero=True)


def step_size(rule: str, lr: float, k: int) -> float:
    """``lr`` (``constant``) or ``lr / sqrt(k + 1)`` (``sqrt``) at iteration ``k``."""
    return lr if rule == "constant" else lr / math.sqrt(k + 1)


class PrimalStep:
    """``sgd`` or ``adam`` on a parameter array (module doc); :meth:`step` moves ``x`` in place."""

    def __init__(self, primal: str, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float):
        check_positive("algo.lr", lr)
        check_primal(primal, beta1, beta2, eps, weight_decay)
        self.primal, self.lr = primal, float(lr)
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)
        self.t = 0
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def reset(self, x: np.ndarray) -> None:
        """Start afresh for parameters shaped like ``x``."""
        self.t = 0
        if self.primal == "adam":
            self.m, self.v = np.zeros_like(x), np.zeros_like(x)

    def step(self, x: np.ndarray, g: np.ndarray, lr: float | None = None) -> None:
        """One step on ``x`` (in place) from the gradient ``g`` (not modified); ``lr`` overrides
        the constant step size (a step-size rule)."""
        lr = self.lr if lr is None else lr
        if self.weight_decay:
            g = g + self.weight_decay * x
        if self.primal == "sgd":
            x -= lr * g
            return
        self.t += 1
        b1, b2, m, v = self.beta1, self.beta2, self.m, self.v
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        denom = np.sqrt(v) / math.sqrt(1.0 - b2 ** self.t) + self.eps
        x -= (lr / (1.0 - b1 ** self.t)) * (m / denom)
