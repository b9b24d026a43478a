"""The embedded default garment set, generated from ``anny`` bodies.

- :mod:`~anchorudf.data.anny.body`: the anny model build, shaped and posed bodies;
- :mod:`~anchorudf.data.anny.plan`: every garment's parameters from one seed;
- :mod:`~anchorudf.data.anny.garments`: one garment mesh from its parameters;
- :mod:`~anchorudf.data.anny.default_set`: the whole set into a garments folder.

Importing this package imports nothing heavy (anny and torch load on first use).
"""
