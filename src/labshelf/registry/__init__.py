"""The registry: runs, dataset refs, summaries and changes, in SQL.

Knows nothing of Jupyter or of data files' contents.  See ``schema.py`` for
the tables, ``engine.py`` for the one door every transaction goes through,
``records.py`` for the frozen records that leave it.
"""
