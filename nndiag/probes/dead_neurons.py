"""Probe module dead_neurons: not written yet; registers no probe until it is."""
