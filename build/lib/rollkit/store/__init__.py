"""What survives a crash: the append-only result and error logs and their lock (`result_log`), the
request journal of paid replies (`journal`), the batch ledgers (`batch_ledger`), compact id sets
(`digests`) and files replaced whole (`atomic`).

May import: nothing else in rollkit.
"""
