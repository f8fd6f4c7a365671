"""The suite: the pytest plugin (options, tiers, fixtures), init ensembles of the claims, shards,
Dask sweeps and the ``dlncheck`` command line. Everything below it takes sizes and seeds.
"""
