"""Compiled (numba) implementations. Only modules under this package import numba, and
they are imported only when a run takes the compiled path."""
