"""Thin trainer callbacks over :mod:`nndiag.watch`: ``lightning`` and ``transformers``.

Each module imports its framework only when used, so nndiag works without either installed
(``pip install nndiag[lightning]`` / ``nndiag[transformers]``).
"""
