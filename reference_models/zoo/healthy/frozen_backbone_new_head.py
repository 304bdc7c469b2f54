"""Feature extraction: a torchvision ResNet backbone frozen (requires_grad=False), a new fc head.

The PyTorch transfer-learning tutorial's "ConvNet as fixed feature extractor": every backbone
parameter gets ``requires_grad = False``, ``model.fc`` is replaced by a new Linear (trainable by
default) and the optimizer holds only ``model.fc.parameters()`` (SGD lr 0.001 momentum 0.9 in the
tutorial; lr 0.01 here). The backbone is a randomly initialised small ResNet (no downloads), so
the head learns on random features; BatchNorm statistics still update in train mode.
"""

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet

from reference_models.zoo import _data


def build_model():
    model_conv = ResNet(BasicBlock, [1, 1, 1, 1])
    for param in model_conv.parameters():
        param.requires_grad = False
    num_ftrs = model_conv.fc.in_features
    model_conv.fc = nn.Linear(num_ftrs, 10)
    return model_conv


_x, _y = _data.digits_rgb(16, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)
