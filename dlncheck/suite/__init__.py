"""The suite: the pytest plugin (options, tiers, fixtures), the tiers' sizes (tiers), claim families
as declared objects (family) and their measured contradictions as data (contradictions), init
ensembles of the claims, shards, Dask sweeps and the ``dlncheck`` command line. Everything below it
takes sizes and seeds, never a tier, and names no family.
"""
