"""The formats of raw records on disk, read and written without torch.

    store   the SQLite store of a sweep (``OUT/sweep.sqlite``)
    runs    the folder of a training run (``config.json``, ``metrics.jsonl``, ``progress.json``)
    schema  the names of a sweep's columns

Writers (sweeps, training runs) and readers (reports, figures, analyses of finished work) meet
here, so a reader never imports a writer.
"""
