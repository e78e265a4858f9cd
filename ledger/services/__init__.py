"""Every write of the ledger, as `<entity>_<action>(*, ...)` functions."""
