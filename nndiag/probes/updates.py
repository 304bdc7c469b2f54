"""Probe module updates: not written yet; registers no probe until it is."""
