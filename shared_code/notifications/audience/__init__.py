"""Who a notification reaches: the scan that freezes the audience a page at a time (`fanout`), a team's
roster (`roster`) and its member index (`member_index`), and the dry run (`preview`).

May import: notifications.records, notifications.jobs and .ports, and the packages below notifications.
"""
