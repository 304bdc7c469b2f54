"""Probe module data: not written yet; registers no probe until it is."""
