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
ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}
# the same activations applied in place, for the inference forward
_IN_PLACE = {"relu": torch.relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_}

# Rows per block of the inference forward. A whole census split's hidden activations
# (14,333 x 64 floats, 3.7 MB) fall out of the cache between layers; blocks of 2,048 rows
# stay in L2, which makes the evaluation forward faster (``scripts/bench.py`` section 6
# measures it; figures in docs/performance.md).
INFERENCE_BLOCK = 2048


class MLP(nn.Sequential):
    """``d -> hidden[0] -> ... -> hidden[-1] -> 1`` with an activation after each hidden layer.

    The default ``hidden=(64, 32)``, ReLU, is the paper's network. Weights use PyTorch's
    default initialisation, seeded by the runner (``torch.manual_seed(seed)``) before the
    model is built, so every seed starts from its own reproducible point.
    """

    def __init__(self, n_features: int, hidden: Sequence[int], activation: str):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per row. Without autograd (evaluation), on more than
        :data:`INFERENCE_BLOCK` rows, and for the network as built (:func:`stock_layers`),
        the rows go through the layers block by block."""
        if torch.is_grad_enabled() or x.dim() != 2 or x.shape[0] <= INFERENCE_BLOCK:
            return super().forward(x).squeeze(-1)
        layers = stock_layers(self)
        if layers is None:  # modified after it was built: the modules as they are now
            return super().forward(x).squeeze(-1)
        return self._inference_forward(x, *layers)

    def _inference_forward(self, x: torch.Tensor, linears: list[nn.Linear], activations: list[str]) -> torch.Tensor:
        """The forward in blocks of rows: ``addmm`` into reused buffers, activations in place.

        Row for row the same products and sums as the layer-by-layer forward, so the logits
        agree with it to float rounding (tests/test_models.py)."""
        transposed = [layer.weight.t() for layer in linears]
        n = x.shape[0]
        block = min(INFERENCE_BLOCK, n)
        buffers = [torch.empty(block, layer.out_features, dtype=x.dtype, device=x.device) for layer in linears]
        logits = torch.empty(n, dtype=x.dtype, device=x.device)
        for start in range(0, n, block):
            h = x[start:start + block]
            rows = h.shape[0]
            for i, (layer, weight_t, buffer) in enumerate(zip(linears, transposed, buffers)):
                h = torch.addmm(layer.bias, h, weight_t, out=buffer[:rows])
                if i < len(activations):
                    _IN_PLACE[activations[i]](h)
            logits[start:start + rows] = h[:, 0]
        return logits


def _global_hooks() -> bool:
    """Whether any module-global forward hook is registered (it would apply to every layer)."""
    from torch.nn.modules import module

    return bool(getattr(module, "_global_forward_hooks", None) or getattr(module, "_global_forward_pre_hooks", None))


def stock_layers(model: nn.Module) -> tuple[list[nn.Linear], list[str]] | None:
    """``(linears, activation names)`` when ``model`` is an :class:`MLP` whose modules are
    still the network it was built as: ``nn.Linear`` and a stock activation alternating, every
    Linear with a bias and feeding the next, one output, and no forward or backward hooks;
    else ``None``. Code that re-implements the forward (the blocked inference forward, the
    numpy oracles) relies on exactly this structure and takes the modules' own forward
    otherwise."""
    if not isinstance(model, MLP):
        return None
    modules = list(model.children())
    if len(modules) < 3 or len(modules) % 2 == 0:
        return None
    linears, activations = modules[0::2], modules[1::2]
    if any(type(m) is not nn.Linear or m.bias is None for m in linears):
        return None
    if any(type(m) not in ACTIVATION_NAMES for m in activations):
        return None
    if any(prev.out_features != nxt.in_features for prev, nxt in zip(linears, linears[1:])):
        return None
    if linears[-1].out_features != 1:
        return None
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None):
            return None
    if _global_hooks():
        return None
    return linears, [ACTIVATION_NAMES[type(m)] for m in activations]
