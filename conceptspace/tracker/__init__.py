"""Concept-space tracker: fixed probes per cell, sampled at every snapshot, read out into raw rows."""
