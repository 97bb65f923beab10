"""The scoring regimes: the unified national score, local-only scores and the federated ones."""
