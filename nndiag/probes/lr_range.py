"""Probe module lr_range: not written yet; registers no probe until it is."""
