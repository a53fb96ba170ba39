"""Block Kit builders: pure functions from core views to Slack JSON (no I/O, no Slack client).

Every user-provided string goes through `text.escape` (mrkdwn) or `text.plain` (plain_text), and
every builder keeps within Slack's limits (see `kit` for the numbers)."""
