"""Reaching the frozen recipients exactly once within the channel's limits: a page job (`delivery`), its rolling
claims (`claim_window`), the process's send threads (`sender`), and when a send may go (`pacing`: the instance's
ceiling in `rate_limit`, the tenant's budget shared by every instance in `rate_budget`), and the watch over a running
page (`watch`: its heartbeat, and the watchdog that re-issues it when its host dies).

May import: notifications.audience, .records, .jobs and .ports, and the packages below notifications.
"""
