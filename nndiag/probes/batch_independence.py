"""Probe module batch_independence: not written yet; registers no probe until it is."""
