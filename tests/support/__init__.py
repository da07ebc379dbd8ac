"""Test and benchmark support that the app never runs: the ground-truth replay oracle, random-weight helpers."""
