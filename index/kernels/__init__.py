"""Numba kernels. Each takes plain numpy arrays and has a plain-numpy reference twin that the tests
compare it against. Nothing here knows about files, vocabularies or strings."""
