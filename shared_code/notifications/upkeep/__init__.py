"""The timers' work: scheduled notifications that fall due (`scheduled`), broadcasts with no progress resumed
(`sweep`), old addresses and finished notifications purged (`retention`), the scheduled survey (`timer_survey`).

May import: notifications.after_send, .sending, .audience, .records, .jobs and .ports, and the packages below
notifications.
"""
