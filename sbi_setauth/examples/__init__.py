"""Runnable examples: an NRF token endpoint and UDM producers protected by the middleware.

They are small on purpose and meant to be read; `sbi-setauth demo` runs them together.
"""
