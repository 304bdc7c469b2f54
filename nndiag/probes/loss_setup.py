"""Probe module loss_setup: not written yet; registers no probe until it is."""
