"""Broken: softmax at the end of ``forward`` and ``CrossEntropyLoss`` on top of it.

The bug (bug-catalogue, PyTorch mistakes: "softmax before CrossEntropyLoss"; the Keras originals
such as SO 50306988 pair softmax with categorical_crossentropy, which is right there and wrong
here): ``CrossEntropyLoss`` applies ``log_softmax`` itself, so the model's probabilities are
squashed a second time; the loss cannot fall much below its starting value and the gradients are
small. The loss is written as a plain function calling ``F.cross_entropy``, as many tutorials do.
Expected: ``loss-setup`` fails (softmax before cross-entropy).

Data: scikit-learn's ``load_digits`` (8x8 digits, pixels / 16).
"""

import torch.nn as nn
import torch.nn.functional as F

from _digits_base import digits, shuffled_loader


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        return F.softmax(self.fc2(x), dim=1)  # BUG: CrossEntropyLoss wants the logits


def build_model():
    return Net()


def dataloader():
    return shuffled_loader(*digits())


def loss_fn(output, targets):
    return F.cross_entropy(output, targets)
