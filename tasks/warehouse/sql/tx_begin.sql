-- Opens a transaction: the statements up to tx_commit (or tx_rollback) apply together or not at all.
BEGIN
