"""Tiny HEAR-API modules for earmark's tests: deterministic, no downloads, no weights needed.

- ``numpy_bands``: NumPy in, NumPy out (log band energies, projected).
- ``torch_bands``: the same model as a ``torch.nn.Module`` that accepts only tensors.
- ``no_scene``, ``wrong_size``, ``bad_rate``, ``bad_timestamps``: broken on purpose, one
  fault each, for the adapter's "expected X, got Y" checks.
"""
