"""Curvature: Hessian-vector products, Hessian estimators and second-order preconditioners."""
