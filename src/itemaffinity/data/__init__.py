"""Reading, mapping, validating and indexing behaviour logs and catalogs."""
