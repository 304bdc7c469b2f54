"""Reference models for nndiag: small, well-behaved PyTorch models to check and to learn from.

Each model file (``xor.py``, ``mlp.py``, ``cnn.py``, ``lstm.py``, ``seq_classifier.py``) is a plain
nndiag model file (``build_model()``, ``dataloader()``, ``loss_fn``, ``build_optimizer(params)``), so
``nndiag check reference_models/mlp.py`` works on it. ``data.py`` finds and loads the MNIST and
Fashion-MNIST IDX files, and ``python -m reference_models.train NAME`` trains one model and records
its held-out score (see ``docs/reference-results.md``).
"""
