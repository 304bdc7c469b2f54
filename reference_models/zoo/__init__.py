"""The calibration zoo: healthy programs and programs with real, published bugs.

``healthy/`` holds idiomatic model files that train; ``bugs/`` holds files reproducing published
bugs. Each folder has a ``manifest.json``. :mod:`reference_models.zoo.validate` trains every file in
plain PyTorch (not through nndiag) and checks that healthy files learn and bug files show their
symptom; :mod:`reference_models.zoo._data` has the small offline data sets they share.
"""
