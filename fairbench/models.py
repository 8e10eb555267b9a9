"""Models: the paper's multilayer perceptron, built from the ``model`` config group.

The model maps standardised features to one logit; the loss is BCE-with-logits. Any
``torch.nn.Module`` with that contract works with the generic (autograd) oracle, so a user can
point ``model._target_`` at their own class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fairbench.errors import check, check_in, check_positive

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class MLP(nn.Sequential):
    """``d -> hidden[0] -> ... -> hidden[-1] -> 1`` with an activation after each hidden layer.

    The default ``hidden=(64, 32)``, ReLU, is the paper's network. Weights use PyTorch's
    default initialisation, seeded by the runner (``torch.manual_seed(seed)``) before the
    model is built, so every seed starts from its own reproducible point.
    """

    def __init__(self, n_features: int, hidden: Sequence[int] = (64, 32), activation: str = "relu"):
        hidden = list(hidden)
        check(len(hidden) >= 1, "model.hidden", hidden, "a non-empty list of layer widths")
        for width in hidden:
            check_positive("model.hidden", width, integer=True)
        check_in("model.activation", activation, ACTIVATIONS)
        layers: list[nn.Module] = []
        width_in = n_features
        for width in hidden:
            layers += [nn.Linear(width_in, int(width)), ACTIVATIONS[activation]()]
            width_in = int(width)
        layers.append(nn.Linear(width_in, 1))
        super().__init__(*layers)
        self.hidden, self.activation = [int(w) for w in hidden], activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - one logit per row
        return super().forward(x).squeeze(-1)
