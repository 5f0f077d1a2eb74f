"""Verification of candidate triples: KGE models, scorers, calibration, metrics and the
confidence model. Imports only from ``kgenrich.kg``, ``kgenrich.errors`` and settings types."""
