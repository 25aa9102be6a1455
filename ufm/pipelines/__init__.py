"""Pipelines that chain the analyses, sweeps and experiments into one job (``ufm demo``)."""
