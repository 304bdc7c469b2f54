"""``python -m nndiag``: the ``nndiag`` command, e.g. under ``torchrun -m nndiag check model.py``."""

from nndiag.cli import main

if __name__ == "__main__":  # pragma: no cover - run as a module
    main(prog_name="nndiag")
