"""The Web API method handlers, one mixin of FakeSlack per Slack API family."""
