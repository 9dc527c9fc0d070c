"""Interpretability: local explanations, their reliability, prototypes and pages to show them."""
