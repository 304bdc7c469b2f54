"""Probe module nan: not written yet; registers no probe until it is."""
