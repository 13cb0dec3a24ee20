"""The emulated neuromorphic board: bit-exact integer engine, flash, faults, serial server.

Must never import torch or gymnasium: it is firmware."""
