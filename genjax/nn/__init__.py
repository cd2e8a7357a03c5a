"""Shared layers. Speed lives here: models stay plainly written on top of these."""
