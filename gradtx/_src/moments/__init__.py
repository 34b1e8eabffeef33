"""Moment estimation and adaptive step sizes."""
