"""Loopback fakes that speak real protocols (model servers, GPU state) for tests."""
