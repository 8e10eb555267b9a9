"""The MLP's inference forward (blocks of rows, no autograd) against the layer-by-layer forward."""

import numpy as np
import pytest
import torch
from torch import nn

from fairbench import models
from fairbench.models import MLP, stock_layers
import configs


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("rows", [1025, 2048, 2049, 5000])
def test_inference_forward_equals_layer_by_layer(activation, rows, monkeypatch):
    monkeypatch.setattr(models, "INFERENCE_BLOCK", 1024)  # several blocks and a ragged last one
    torch.manual_seed(0)
    model = MLP(9, [16, 8], activation)
    x = torch.randn(rows, 9)
    with torch.no_grad():
        fast = model(x)
        plain = torch.nn.Sequential.forward(model, x).squeeze(-1)
    assert fast.shape == (rows,)
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-6, atol=1e-6)


def test_inference_forward_is_used_only_without_autograd(monkeypatch):
    monkeypatch.setattr(models, "INFERENCE_BLOCK", 4)
    model = configs.model(3, hidden=[5])
    calls = []
    original = MLP._inference_forward
    monkeypatch.setattr(MLP, "_inference_forward",
                        lambda self, x, *layers: calls.append(len(x)) or original(self, x, *layers))
    x = torch.randn(10, 3)
    out = model(x)  # autograd on: the plain forward, differentiable
    out.sum().backward()
    assert calls == [] and model[0].weight.grad is not None
    with torch.no_grad():
        model(x[:4])  # not more rows than a block: the plain forward
        assert calls == []
        model(x)
    assert calls == [10]


def test_inference_forward_keeps_the_input_dtype():
    model = configs.model(4, hidden=[6, 3]).double()
    x = torch.randn(3000, 4, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        plain = torch.nn.Sequential.forward(model, x).squeeze(-1)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)


def _modified(kind: str) -> MLP:
    torch.manual_seed(1)
    model = configs.model(9, hidden=[16, 8])
    if kind == "gelu":
        model[1] = nn.GELU()
    elif kind == "swapped activation":
        model[3] = nn.Tanh()  # still stock modules: the blocked forward follows them
    elif kind == "hook":
        model[0].register_forward_hook(lambda module, inputs, output: output * 2)
    elif kind == "extra layer":
        model.append(nn.Sigmoid())
    elif kind == "dropout":
        model.insert(2, nn.Dropout(0.5))
    elif kind == "three outputs":
        model[-1] = nn.Linear(8, 3)
    elif kind == "no bias":
        model[2] = nn.Linear(16, 8, bias=False)
    return model


@pytest.mark.parametrize("kind", ["gelu", "swapped activation", "hook", "extra layer", "dropout", "three outputs",
                                  "no bias"])
def test_a_modified_mlp_is_evaluated_through_its_own_modules(kind, monkeypatch):
    """Whatever a user changed after building the MLP, the forward without autograd computes
    what the modules compute (the blocked path only runs the network as built)."""
    monkeypatch.setattr(models, "INFERENCE_BLOCK", 512)
    model = _modified(kind)
    assert (stock_layers(model) is not None) == (kind == "swapped activation")
    x = torch.randn(1500, 9)
    torch.manual_seed(2)
    with torch.no_grad():
        out = model(x)
        torch.manual_seed(2)
        plain = torch.nn.Sequential.forward(model, x).squeeze(-1)
    assert out.shape == plain.shape
    np.testing.assert_allclose(out.numpy(), plain.numpy(), rtol=1e-6, atol=1e-6)


def test_a_global_forward_hook_turns_the_blocked_path_off():
    model = configs.model(4, hidden=[6])
    handle = nn.modules.module.register_module_forward_hook(lambda module, inputs, output: output)
    try:
        assert stock_layers(model) is None
    finally:
        handle.remove()
    assert stock_layers(model) is not None
