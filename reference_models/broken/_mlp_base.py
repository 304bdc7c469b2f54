"""Shared pieces of the broken MLP variants: the reference MLP's data, loss and optimizer.

Each broken file changes exactly one thing of ``reference_models/mlp.py`` (the bug it is named
after) and reuses the rest from here, so a test that flags it flags that bug and nothing else.
"""

import sys
from pathlib import Path

try:
    from reference_models import mlp as reference_mlp
except ImportError:  # loaded by path from a checkout where the project is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from reference_models import mlp as reference_mlp

SimpleANN = reference_mlp.SimpleANN
dataloader = reference_mlp.dataloader
loss_fn = reference_mlp.loss_fn
build_optimizer = reference_mlp.build_optimizer
