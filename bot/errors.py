"""Every error the bot raises on purpose, split by who handles it.

```
RolloutBotError
├── UserMistake          a person typed or configured something wrong: say what and how to fix it
│   ├── ParseError       the `/rollout` grammar (commands.parse): an ephemeral reply
│   └── ConfigError      a config file that cannot load (bot.config): field and line, exit 1
├── Conflict             another writer won the race: roll the transaction back, look again
│   ├── RolloutMoved     the rollout row's version moved (bot.services.rollouts)
│   └── IncidentMoved    the incident's token moved (bot.services.incidents)
├── DeliveryFailed       a Slack Web API call failed: the outbox retries after `retry_after`,
│                        or gives up when `permanent` (bot.services.outbox)
└── AlertmanagerFailed   Alertmanager's API could not be reached or refused a silence: the
                         person who asked is told, the bot's own silence stands
                         (bot.alertmanager_api)
```

Not errors, by design: a failed metric query is a measurement (SOURCE_DOWN, see
`bot.prometheus`); a step the policy refuses is a `Refusal` that `decide` returns.
"""

from __future__ import annotations

from dataclasses import dataclass


class RolloutBotError(Exception):
    """The root: anything the bot raises on purpose."""


class UserMistake(RolloutBotError):
    """Something a person typed or configured, answered with what to do instead."""


@dataclass(frozen=True)
class ParseError(UserMistake):
    """A `/rollout` command that does not parse: what was wrong, and what to type."""

    problem: str
    hint: str

    def __str__(self) -> str:
        return f"{self.problem} {self.hint}"


class ConfigError(UserMistake):
    """A config that cannot load; each line names the field and where it is."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def report(self) -> str:
        return "\n".join(f"{self.source}:{p}" for p in self.problems)


class Conflict(RolloutBotError):
    """Another writer changed the row this transaction read: it must roll back."""


class RolloutMoved(Conflict):
    """The rollout row's version moved under this transaction."""


class IncidentMoved(Conflict):
    """The incident's token moved under this transaction."""


class DeliveryFailed(RolloutBotError):
    """A failed delivery to Slack: retry after `retry_after` seconds, or never when
    permanent."""

    def __init__(self, error: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(error)
        self.error = error
        self.permanent = permanent
        self.retry_after = retry_after


class AlertmanagerFailed(RolloutBotError):
    """Alertmanager's API was unreachable, timed out, or refused the request; `reason` is a
    sentence for the person who asked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
