"""Sharpness-aware updates: SAM, ASAM and GAM, wrapping any base transformation."""
