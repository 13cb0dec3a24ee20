"""Quantise, map, pack, flash and run the closed loop: the user's main path."""
