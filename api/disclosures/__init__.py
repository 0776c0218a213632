"""The accounting of disclosures: an append-only ledger of what each recipient was shown."""
