"""gradients says where a detached graph is cut (issue 13): "conv2 gets no gradient, fc does"."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.report import Status


class CutCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.detach().flatten(1))  # cuts conv1 and conv2 off the loss


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cut_is_named_between_the_last_module_without_gradient_and_the_first_with(seed):
    g = torch.Generator().manual_seed(seed)
    batch = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    r = nndiag.check_probe("gradients", seed=seed, model=CutCNN, batch=batch,
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    # By hand: which parameters get a gradient from one backward.
    torch.manual_seed(seed)
    m = CutCNN()
    nn.CrossEntropyLoss()(m(batch[0]), batch[1]).backward()
    cut_off = sorted(n for n, p in m.named_parameters() if p.grad is None)
    assert sorted(f.where for f in r.findings if f.severity is Status.FAIL) == cut_off
    assert "conv2 gets no gradient, fc does: the graph is cut between them" in r.summary
