"""Gymnasium robot tasks, fault injection and privileged teacher controllers."""
