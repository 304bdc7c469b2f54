"""Shared pytest configuration for nndiag's own tests."""

pytest_plugins = ["pytester"]
