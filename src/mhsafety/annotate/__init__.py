"""Annotation of (context, response) pairs along the sequential taxonomy.

``store`` keeps items and annotations in SQLite, ``app`` is the web app annotators use,
``agreement`` measures inter-annotator agreement and adjudicates labels for export.
"""

from __future__ import annotations

from .store import AnnotationStore, open_store

__all__ = ["AnnotationStore", "open_store"]
