"""Deterministic stand-ins for the few sources of randomness tests need to pin down.

Never in production: each fake exists so a test can reach a case the real generator hits once in
billions of draws.
"""
