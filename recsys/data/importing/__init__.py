"""Importing event logs and catalogues of any shape: sources (files, globs, URLs, SQL), the
mapping from their columns and values to the lake's, and the streamed import itself."""
