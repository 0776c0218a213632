"""Withdrawal scales (SOWS, SOWS-Gossop, COWS): one definition that both serves and scores them."""
