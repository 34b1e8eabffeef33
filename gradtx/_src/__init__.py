"""Implementation; import from gradtx and its family modules instead."""
