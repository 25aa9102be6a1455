"""Figures and reports, built from stored records alone (never re-running anything)."""
