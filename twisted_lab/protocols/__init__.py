"""The wire protocols that serve the device registry."""
