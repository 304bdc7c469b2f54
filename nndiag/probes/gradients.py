"""Probe module gradients: not written yet; registers no probe until it is."""
