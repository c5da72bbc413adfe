"""Runnable examples of using alora-serve's intrinsics."""
