"""Probe module saturation: not written yet; registers no probe until it is."""
