"""Core: types, tree helpers, validation, errors, keys, extra inputs and the registry."""
