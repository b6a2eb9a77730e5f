"""What a notification leaves in Table Storage: the notification and its frozen pages (`store`), the delivery
ledger, one row per recipient (`ledger`, and `ledger_reads` for the queries that rely only on its key prefix),
and the acknowledgements and reactions (`acknowledgements`).

May import: notifications.jobs, and the packages below notifications.
"""
