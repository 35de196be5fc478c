"""Test support: loopback servers (DNS) and fixtures shared across the suite."""
