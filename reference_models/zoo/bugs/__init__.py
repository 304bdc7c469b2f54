"""Bug half of the calibration zoo: model files with real, published training bugs (manifest.json)."""
