"""Built-in probes: one module per probe, each registering itself through the public hook."""
