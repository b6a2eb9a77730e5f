"""After the send: edit and recall every delivered message (`edits`), acknowledgements and reactions
(`acknowledgements`), the CSV reports (`reports`).

May import: notifications.sending, .audience, .records, .jobs and .ports, and the packages below notifications.
"""
