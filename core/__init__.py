"""ticketbot's support desk: models, permissions and services, free of any Slack import."""
