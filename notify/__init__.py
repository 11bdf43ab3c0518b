"""rivermon.notify: alert events to WeChat Work, DingTalk and JSON webhooks, durably.

``rivermon notify`` subscribes to ``{prefix}/+/alerts``, writes every event into a SQLite outbox
before acknowledging it to the broker, routes it by severity, kind class (water event or
equipment fault) and segment to the targets of a routes file, and delivers each message with
retries until the target takes it. See docs/notify.md.
"""
