"""The MLP's inference forward (blocks of rows, no autograd) against the layer-by-layer forward."""

import numpy as np
import pytest
import torch

from fairbench import models
from fairbench.models import MLP


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("rows", [1, 2048, 2049, 5000])
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
    model = MLP(3, [5])
    calls = []
    original = MLP._inference_forward
    monkeypatch.setattr(MLP, "_inference_forward", lambda self, x: calls.append(len(x)) or original(self, x))
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
    model = MLP(4, [6, 3]).double()
    x = torch.randn(3000, 4, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        plain = torch.nn.Sequential.forward(model, x).squeeze(-1)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), plain.numpy(), rtol=1e-12, atol=1e-12)
