"""Probe module overfit: not written yet; registers no probe until it is."""
