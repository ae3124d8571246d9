"""Versions we announce."""

PYI2P_VERSION = "0.1.0"
# The I2P API level we speak, published as router.version (i2np.rst feature gates key on it).
ROUTER_VERSION = "0.9.66"
