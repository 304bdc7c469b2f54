"""Broken: XOR with sigmoid units, mean absolute error and a low SGD learning rate
(bug-catalogue SO 31556268).

The bug (Stack Overflow 31556268, DeepLocalize benchmark, faults LCH, HLR, OCH): a 2-4-1 network,
sigmoid hidden and output units, mean absolute error, SGD at lr 0.05 with momentum 0.11, batches of
4, on the four XOR points; reported loss stuck at 0.25 and accuracy 0.5 (with MSE and Adam: 1.0).
MAE's gradient has the same size however wrong the output is, and through two sigmoids it is
tiny, so at lr 0.05 the outputs all drift to 0.5 and stay there.
Expected: ``overfit`` fails (the loss hardly falls: the batch is not learned).
"""

import torch
import torch.nn as nn

X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])


def build_model():
    return nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())


def sample_batch():
    return X.clone(), Y.clone()


loss_fn = nn.L1Loss()  # BUG: MAE for a classification target


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.11)  # BUG: low LR for this loss
