"""The authors' page: the page itself (static files in `page/`), who is signed in (`signin`), what their role
lets them do (`policy`), the anti-forgery check (`forgery`) and its API (`routes`), over the notify API.

May import: notifications, conversation, storage, protocol, plumbing.
"""
