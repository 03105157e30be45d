"""The YAML config file: pydantic models, loaded with errors that name the field and the line."""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.domain.assess import DEFAULT_WINDOWS, GateRule, OnNoData
from bot.domain.cadence import DEFAULT_CADENCE, Rule
from bot.domain.durations import format_duration, parse_duration
from bot.domain.gates import DEFAULT_GRACE, DEFAULT_INTERVAL
from bot.domain.plans import BUILTIN_PLANS, TIER_TOPS, Plan, Stage, Tier
from bot.domain.policy import FreezeWindow, Policy, Role, TwoPerson, day_number
from bot.domain.rollout import AdvanceMode, RolloutSpec
from bot.errors import ConfigError


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        if value.strip().startswith("-"):
            raise ValueError(f"a duration cannot be negative (got '{value}')")
        return parse_duration(value)
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"a duration cannot be negative (got {format_duration(value)})")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_not_negative)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StageConfig(_Model):
    """One stage of a plan."""

    percent: int = Field(ge=1, le=100, description="traffic percentage at this stage")
    soak: Duration = Field(description="how long the stage must stay healthy, e.g. 24h")
    flags: list[str] = Field(default=[], description="feature flags switched on from here")


class CheckpointRule(_Model):
    """How often checkpoint summaries are posted after a change of percentage."""

    until: Duration | None = Field(
        default=None, description="this rule applies until this long after the change"
    )
    every: Duration = Field(description="post a checkpoint this often")

    def to_rule(self) -> Rule:
        return Rule(self.every, self.until)


class PlanConfig(_Model):
    """A custom plan, used by name from a rollout's `plan:`."""

    description: str = Field(default="", description="shown by `check-config`")
    stages: list[StageConfig] = Field(
        min_length=1, description="the stages in order; percents strictly increase"
    )
    checkpoints: list[CheckpointRule] | None = Field(
        default=None, description="this plan's checkpoint cadence (default: `checkpoints:`)"
    )

    @field_validator("stages")
    @classmethod
    def _increasing(cls, stages: list[StageConfig]) -> list[StageConfig]:
        percents = [s.percent for s in stages]
        if percents != sorted(set(percents)):
            raise ValueError(f"stage percents must strictly increase, got {percents}")
        return stages

    def to_plan(self, name: str) -> Plan:
        stages = tuple(Stage(s.percent, s.soak, tuple(s.flags)) for s in self.stages)
        return Plan(name, stages, self.description)


T = TypeVar("T")


class Tiered(_Model, Generic[T]):
    """A value per gate tier: canary (≤ 10 %), progressive (≤ 50 %), final (above)."""

    canary: T = Field(description="up to 10 % of traffic")
    progressive: T = Field(description="up to 50 % of traffic")
    final: T = Field(description="above 50 % of traffic")

    def at(self, tier: Tier) -> T:
        value: T = getattr(self, tier.value)
        return value


def _tiered(value: Any) -> Any:
    """A single value applies to every tier."""
    if isinstance(value, dict):
        return value
    return {"canary": value, "progressive": value, "final": value}


TieredFloat = Annotated[Tiered[float], BeforeValidator(_tiered)]
TieredDuration = Annotated[Tiered[Duration], BeforeValidator(_tiered)]


class GateConfig(_Model):
    """A health gate: a PromQL query compared with a threshold per tier."""

    query: str = Field(description="PromQL; `{flag}` is replaced by the rollout's flag")
    fail_above: TieredFloat | None = Field(default=None, description="red when the value is above")
    fail_below: TieredFloat | None = Field(default=None, description="red when the value is below")
    for_: TieredDuration = Field(
        default=Tiered[timedelta](**{t.value: w for t, w in DEFAULT_WINDOWS.items()}),
        alias="for",
        description="how long it must stay red before the rollout rolls back",
    )
    interval: Duration = Field(
        default=DEFAULT_INTERVAL, description="how often it is measured"
    )
    on_no_data: Literal["hold", "fail", "pass"] = Field(
        default="hold", description="what an empty result means"
    )
    no_data_grace: Duration = Field(
        default=DEFAULT_GRACE,
        description="how long no data or a down source may last before on-call is paged",
    )

    @model_validator(mode="after")
    def _has_threshold(self) -> GateConfig:
        if self.fail_above is None and self.fail_below is None:
            raise ValueError("a gate needs `fail_above` or `fail_below`")
        return self

    def to_rule(self, name: str) -> GateRule:
        def per_tier(value: Tiered[Any] | None) -> dict[Tier, Any] | None:
            return None if value is None else {tier: value.at(tier) for tier in Tier}

        return GateRule(
            name=name,
            query=self.query,
            fail_above=per_tier(self.fail_above),
            fail_below=per_tier(self.fail_below),
            window=per_tier(self.for_) or {},
            interval=self.interval,
            on_no_data=OnNoData(self.on_no_data),
            no_data_grace=self.no_data_grace,
        )


SLACK_ID = r"^[UWS][A-Z0-9]{2,}$"
SlackId = Annotated[str, Field(pattern=SLACK_ID)]


class RolesConfig(_Model):
    """Who may act: Slack user IDs (U…) or user group IDs (S…, their members, looked up
    with `usergroups.users.list`). With none configured, everyone may."""

    leads: list[SlackId] = Field(
        default=[], description="may start, advance, resume, force, freeze and unfreeze"
    )
    operators: list[SlackId] = Field(
        default=[], description="may pause, roll back and acknowledge"
    )
    rollback: list[SlackId] = Field(
        default=[],
        description="if set, only these may roll back (instead of operators, leads and owners)",
    )

    @property
    def configured(self) -> bool:
        return bool(self.leads or self.operators or self.rollback)


_DAILY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


class FreezeWindowConfig(_Model):
    """When advances wait, in `timezone`: whole weekdays, whole dates, or daily hours."""

    days: list[str] = Field(default=[], description="weekdays: mon … sun (or monday …)")
    dates: list[date] = Field(default=[], description="dates, e.g. 2026-12-24")
    daily: str | None = Field(
        default=None,
        description="HH:MM-HH:MM every day (or on `days`/`dates`); an end before the start "
        "runs past midnight",
    )
    reason: str = Field(default="", description="shown when an advance is refused or waits")

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        unknown = [d for d in days if day_number(d) is None]
        if unknown:
            raise ValueError(
                f"unknown weekday {', '.join(repr(d) for d in unknown)}; "
                "use mon, tue, wed, thu, fri, sat, sun"
            )
        return days

    @field_validator("daily")
    @classmethod
    def _hours(cls, daily: str | None) -> str | None:
        if daily is None:
            return None
        match = _DAILY.match(daily.replace(" ", ""))
        if match is None:
            raise ValueError(f"'{daily}' is not HH:MM-HH:MM, e.g. \"18:00-08:00\"")
        start, end = match.group(1, 2), match.group(3, 4)
        if start == end or (start == ("00", "00") and end == ("24", "00")):
            raise ValueError(f"'{daily}' never ends: its start and its end are the same time")
        return daily

    @model_validator(mode="after")
    def _says_when(self) -> FreezeWindowConfig:
        if not (self.days or self.dates or self.daily):
            raise ValueError("a freeze window needs `days`, `dates` or `daily`")
        return self

    def to_window(self) -> FreezeWindow:
        daily = None
        if self.daily is not None:
            start, end = self.daily.replace(" ", "").split("-")
            daily = (_clock(start), _clock(end))
        days = frozenset(n for d in self.days if (n := day_number(d)) is not None)
        return FreezeWindow(self.reason, days, frozenset(self.dates), daily)


def _clock(hhmm: str) -> time:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return time(0, minute) if hour == 24 else time(hour, minute)


class TwoPersonConfig(_Model):
    """Steps to or above `from_percent` need a second person's confirmation."""

    from_percent: int = Field(ge=1, le=100, description="the first percent that needs two")
    confirm_within: Duration = Field(
        default=timedelta(minutes=30), description="how long a request waits for its confirm"
    )


class PolicyConfig(_Model):
    """The safety policy: the two-person rule and freeze windows."""

    two_person: TwoPersonConfig | None = Field(
        default=None, description="steps at or above a percent need a second person"
    )
    freeze: list[FreezeWindowConfig] = Field(
        default=[], description="windows in which advances wait (nights, weekends, dates)"
    )


class ChainLevel(_Model):
    """One level of the on-call chain: a user or a user group, and how long to wait."""

    user: str | None = Field(default=None, description="a Slack user ID, e.g. U0FORGE")
    group: str | None = Field(default=None, description="a Slack user group ID, e.g. S0ONCALL")
    wait: Duration = Field(
        default=timedelta(minutes=5), description="how long to wait for an ack before the next"
    )

    @model_validator(mode="after")
    def _one_target(self) -> ChainLevel:
        if (self.user is None) == (self.group is None):
            raise ValueError("a chain level names exactly one of `user` or `group`")
        return self


class OncallConfig(_Model):
    """The on-call chain paged when a rollout needs a person."""

    chain: list[ChainLevel] = Field(default=[], description="paged in order until acknowledged")
    repeat: int = Field(default=0, ge=0, le=10, description="times the chain repeats")
    remind_after: Duration | None = Field(default=None, description="remind the acknowledger")


class BasicAuthConfig(_Model):
    """HTTP basic auth that Alertmanager's `http_config.basic_auth` sends."""

    username: str = Field(min_length=1, description="the user name Alertmanager sends")
    password: str = Field(min_length=1, description="the password Alertmanager sends")


class AlertmanagerConfig(_Model):
    """`POST /alertmanager`: who may call it, and what a critical alert does to a rollout;
    `url`: where silences go."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Alertmanager's base URL (`http://alertmanager:9093`): **Silence** creates "
        "a silence there through API v2 and **Unsilence** expires it",
    )
    timeout: Duration = Field(
        default=timedelta(seconds=5), description="per call to Alertmanager's API"
    )

    bearer_token: str | None = Field(
        default=None, min_length=16, description="required `Authorization: Bearer` token"
    )
    basic_auth: BasicAuthConfig | None = Field(default=None, description="or HTTP basic auth")
    hold_on_critical: bool = Field(
        default=True, description="pause a canary-tier rollout when a critical alert fires"
    )
    hold_max_percent: int = Field(
        default=TIER_TOPS[Tier.CANARY], ge=0, le=100, description="the canary tier's top"
    )
    critical_severity: str = Field(default="critical", description="the `severity` label value")


class PrometheusConfig(_Model):
    """Where gate queries are sent."""

    url: str = Field(
        default="http://127.0.0.1:9090", description="the Prometheus API; PROMETHEUS_URL overrides"
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="per query")


def _default_checkpoints() -> list[CheckpointRule]:
    return [CheckpointRule(until=r.until, every=r.every) for r in DEFAULT_CADENCE]


class RolloutConfig(_Model):
    """One rollout: a feature flag walked through a plan."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
        description="what people type after `/rollout`: lowercase letters, digits, `-_.`",
    )
    flag: str = Field(min_length=1, description="the feature flag whose percentage moves")
    plan: str = Field(
        default="safe", description="a built-in plan (safe, six-day, fast, instant) or one under"
        " `plans:`"
    )
    gates: list[str] = Field(default=[], description="names of gates under `gates:`")
    advance: AdvanceMode = Field(
        default=AdvanceMode.MANUAL,
        description="`manual`, `auto`: advance when the soak ends with every gate green, or "
        "`shadow`: every run advances by itself and says what it decides, but `/flags`, the "
        "flags file and the webhook keep delivering what they did before it",
    )
    page_in_shadow: bool = Field(
        default=False,
        description="a shadow run (`advance: shadow`, `/rollout start NAME shadow`) pages "
        "on-call as a live one would; without it a shadow run pages nobody",
    )
    webhook: str | None = Field(default=None, description="URL POSTed on every change")
    owners: list[SlackId] = Field(
        default=[], description="users (U…) or user groups (S…) who may act on this rollout"
    )
    policy: PolicyConfig | None = Field(
        default=None, description="this rollout's policy; the fields it sets replace the config's"
    )


class DashboardConfig(_Model):
    """The read-only web dashboard at `/` (and its live updates at `/events`)."""

    token: str | None = Field(
        default=None,
        min_length=16,
        description="when set, always required (on loopback too, e.g. behind a proxy on the "
        "same host): open `/?token=…` once, or send `Authorization: Bearer …`; required when "
        "the bot listens beyond loopback, where without it the dashboard answers 403",
    )
    recent_events: int = Field(
        default=5, ge=1, le=50, description="events shown in each rollout's timeline"
    )


class Config(_Model):
    """The whole config file."""

    channel: str = Field(default="#deployments", description="where rollout threads live")
    timezone: str = Field(default="UTC", description="for the daily summary and the dashboard")
    prometheus: PrometheusConfig = Field(
        default=PrometheusConfig(), description="where gate queries go"
    )
    roles: RolesConfig = Field(default=RolesConfig(), description="who may do what")
    policy: PolicyConfig = Field(
        default=PolicyConfig(), description="two-person rule and freeze windows for every rollout"
    )
    oncall: OncallConfig = Field(default=OncallConfig(), description="who is paged, in order")
    alertmanager: AlertmanagerConfig = Field(
        default=AlertmanagerConfig(),
        description="`POST /alertmanager`: who may call it, what a critical alert does",
    )
    checkpoints: list[CheckpointRule] = Field(
        default_factory=_default_checkpoints,
        description="cadence of checkpoint summaries; the first rule whose `until` is not "
        "passed applies",
    )
    daily_summary: str = Field(
        default="09:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="HH:MM in `timezone`",
    )
    flags_file: str | None = Field(default=None, description="JSON file rewritten on change")
    flagd_file: str | None = Field(
        default=None,
        description="flagd flag-definition file (OpenFeature), rewritten on change",
    )
    plans: dict[str, PlanConfig] = Field(
        default={}, description="custom plans by name, besides the built-in ones"
    )
    gates: dict[str, GateConfig] = Field(default={}, description="health gates by name")
    rollouts: list[RolloutConfig] = Field(default=[], description="the rollouts this bot runs")
    dashboard: DashboardConfig = Field(
        default=DashboardConfig(), description="the web dashboard at `/`"
    )

    @model_validator(mode="before")
    @classmethod
    def _freeze_shorthand(cls, data: Any) -> Any:
        """A top-level `freeze:` is `policy.freeze:`."""
        if isinstance(data, dict) and "freeze" in data:
            data = dict(data)
            policy = dict(data.get("policy") or {})
            if "freeze" in policy:
                raise ValueError("`freeze:` is given twice: at the top and under `policy:`")
            policy["freeze"] = data.pop("freeze")
            data["policy"] = policy
        return data

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone '{value}', e.g. UTC or Europe/Paris") from None
        return value

    def plan(self, name: str) -> Plan:
        if name in self.plans:
            return self.plans[name].to_plan(name)
        return BUILTIN_PLANS[name]

    def gate_rules(self) -> dict[str, GateRule]:
        return {name: gate.to_rule(name) for name, gate in self.gates.items()}

    def webhooks(self) -> dict[str, str]:
        return {r.name: r.webhook for r in self.rollouts if r.webhook}

    def cadence(self, plan: str) -> tuple[Rule, ...]:
        """The checkpoint cadence of a plan: its own, or the config's."""
        custom = self.plans.get(plan)
        rules = custom.checkpoints if custom and custom.checkpoints else self.checkpoints
        return tuple(r.to_rule() for r in rules)

    def policy_config(self, rollout: RolloutConfig) -> PolicyConfig:
        """A rollout's effective policy config: its own fields over the config's."""
        if rollout.policy is None:
            return self.policy
        own = {name: getattr(rollout.policy, name) for name in rollout.policy.model_fields_set}
        return self.policy.model_copy(update=own)  # fields it leaves out keep the config's

    def rollout_policy(self, rollout: RolloutConfig | None = None) -> Policy:
        """The policy `decide` applies to a rollout (or, without one, to every rollout)."""
        roles = self.roles
        holders = {
            Role.LEAD: tuple(roles.leads),
            Role.OPERATOR: tuple(roles.operators),
            Role.ROLLBACK: tuple(roles.rollback),
            Role.OWNER: tuple(rollout.owners) if rollout else (),
        }
        policy = self.policy if rollout is None else self.policy_config(rollout)
        two = policy.two_person
        return Policy(
            holders=holders,
            two_person=TwoPerson(two.from_percent, two.confirm_within) if two else None,
            windows=tuple(w.to_window() for w in policy.freeze),
            timezone=ZoneInfo(self.timezone),
        )

    def specs(self) -> dict[str, RolloutSpec]:
        return {
            r.name: RolloutSpec(
                r.name,
                r.flag,
                self.plan(r.plan),
                tuple(r.gates),
                r.advance,
                self.rollout_policy(r),
                page_in_shadow=r.page_in_shadow,
            )
            for r in self.rollouts
        }


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f" cannot read: {exc.strerror}"]) from exc
    return parse_config(text, str(path))


# A config is a few hundred nodes a few levels deep. Past these limits a document is a
# mistake or a bomb: aliases of aliases ("billion laughs") expand to billions of nodes
# from a few lines, and deep nesting exhausts the recursion of the YAML composer.
MAX_YAML_NODES = 100_000  # counted as the aliases expand
MAX_YAML_DEPTH = 32


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        problem = _too_big(root) if root is not None else None
        if problem:
            raise ConfigError(source, [problem])
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:" if mark else ""
        raise ConfigError(source, [f"{where} not valid YAML: {exc}"]) from exc
    except RecursionError:
        raise ConfigError(
            source, [f"1: the document nests deeper than {MAX_YAML_DEPTH} levels"]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["1: the config must be a mapping of keys such as `rollouts:`"])
    lines = _line_numbers(root) if root is not None else {}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_explain(err, lines) for err in exc.errors()]) from exc
    problems = _cross_references(config, lines)
    problems += _conflicts(config, lines)
    problems += _durations_that_cannot_work(config, lines)
    if problems:
        raise ConfigError(source, problems)
    return config


def _cross_references(config: Config, lines: dict[tuple[Any, ...], int]) -> list[str]:
    problems = []
    known_plans = sorted(set(BUILTIN_PLANS) | set(config.plans))
    seen: set[str] = set()
    for i, rollout in enumerate(config.rollouts):
        if rollout.name in seen:
            problems.append(
                _at(lines, ("rollouts", i, "name"), f"duplicate rollout name '{rollout.name}'")
            )
        seen.add(rollout.name)
        if rollout.plan not in known_plans:
            problems.append(
                _at(
                    lines,
                    ("rollouts", i, "plan"),
                    f"unknown plan '{rollout.plan}'; known: {', '.join(known_plans)}",
                )
            )
        for j, gate in enumerate(rollout.gates):
            if gate not in config.gates:
                known = ", ".join(sorted(config.gates)) or "none defined under gates:"
                problems.append(
                    _at(
                        lines, ("rollouts", i, "gates", j), f"unknown gate '{gate}'; known: {known}"
                    )
                )
    problems += _policy_problems(config, lines)
    return problems


_A_MONDAY = datetime(2001, 1, 1)


def _policy_problems(config: Config, lines: dict[tuple[Any, ...], int]) -> list[str]:
    """Freeze windows that never end, and a two-person threshold no stage reaches."""
    problems = []
    where: list[tuple[tuple[Any, ...], RolloutConfig | None]] = [(("policy",), None)]
    where += [(("rollouts", i, "policy"), r) for i, r in enumerate(config.rollouts) if r.policy]
    for path, rollout in where:
        windows = config.rollout_policy(rollout).windows
        weekly = Policy(windows=tuple(w for w in windows if w.days or not w.dates))
        if windows and weekly.window_end(_A_MONDAY, horizon_days=8) is None:
            message = "the freeze windows together never end: no advance could ever happen"
            problems.append(_at(lines, (*path, "freeze"), message))
    for i, rollout in enumerate(config.rollouts):
        two = config.policy_config(rollout).two_person
        plan = config.plan(rollout.plan) if rollout.plan in config.plans or (
            rollout.plan in BUILTIN_PLANS
        ) else None
        if two is None or plan is None or max(plan.percents) >= two.from_percent:
            continue
        own = rollout.policy is not None and "two_person" in rollout.policy.model_fields_set
        path = ("rollouts", i, "policy") if own else ("policy",)
        problems.append(
            _at(
                lines,
                (*path, "two_person", "from_percent"),
                f"no stage of plan '{plan.name}' (rollout {rollout.name}) reaches "
                f"{two.from_percent} %: its highest is {max(plan.percents)} %",
            )
        )
    return problems


def _conflicts(config: Config, lines: dict[tuple[Any, ...], int]) -> list[str]:
    """Two rollouts moving one flag; a custom plan that would hide a built-in one."""
    problems = []
    flags: dict[str, int] = {}
    for i, rollout in enumerate(config.rollouts):
        first = flags.setdefault(rollout.flag, i)
        if first != i:
            other = config.rollouts[first].name
            problems.append(
                _at(
                    lines,
                    ("rollouts", i, "flag"),
                    f"flag '{rollout.flag}' is already rolled out by '{other}'"
                    f"{_line_words(lines, ('rollouts', first, 'flag'))}; two rollouts would "
                    "set its percentage in turn",
                )
            )
    for name in config.plans:
        if name in BUILTIN_PLANS:
            builtin = BUILTIN_PLANS[name]
            problems.append(
                _at(
                    lines,
                    ("plans", name),
                    f"'{name}' is a built-in plan ({builtin.description}); give the custom "
                    f"plan another name, e.g. '{name}-custom'",
                )
            )
    return problems


def _durations_that_cannot_work(config: Config, lines: dict[tuple[Any, ...], int]) -> list[str]:
    """Durations that must be more than zero, and sustain windows that must hold at least
    one measurement. (No duration may be negative: the `Duration` type refuses those.)"""
    zero = timedelta(0)
    problems = []

    def positive(loc: tuple[Any, ...], value: timedelta | None, what: str) -> None:
        if value is not None and value <= zero:
            problems.append(_at(lines, loc, f"must be more than 0s: {what}"))

    positive(("prometheus", "timeout"), config.prometheus.timeout, "it is how long a query waits")
    positive(
        ("oncall", "remind_after"), config.oncall.remind_after, "it is how often the acknowledger"
        " is reminded"
    )
    cadences: list[tuple[tuple[Any, ...], list[CheckpointRule]]] = [
        (("checkpoints",), config.checkpoints)
    ]
    for plan_name, plan in config.plans.items():
        cadences.append((("plans", plan_name, "checkpoints"), plan.checkpoints or []))
    for at, rules in cadences:
        for i, rule in enumerate(rules):
            positive((*at, i, "every"), rule.every, "it is how often a checkpoint is posted")
    for name, gate in config.gates.items():
        at = ("gates", name)
        positive((*at, "interval"), gate.interval, "it is how often the gate is measured")
        if gate.interval <= zero:
            continue
        short = [t for t in Tier if gate.for_.at(t) < gate.interval]
        if not short:
            continue
        tiered = any((*at, "for", t.value) in lines for t in Tier)
        for tier in short if tiered else short[:1]:
            window = format_duration(gate.for_.at(tier))
            problems.append(
                _at(
                    lines,
                    (*at, "for", tier.value) if tiered else (*at, "for"),
                    f"the {window} window is shorter than the gate's interval "
                    f"({format_duration(gate.interval)}): it would be judged on less than one "
                    "measurement; make `for` at least the interval",
                )
            )
    return problems


def _line_words(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> str:
    return f" (line {lines[loc]})" if loc in lines else ""


def _explain(err: Any, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    if err["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'" + _suggest(loc, lines)
    else:
        message = err["msg"].removeprefix("Value error, ")
    return _at(lines, loc, message)


def _suggest(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> str:
    parent = _model_for(loc[:-1])
    if parent is None:
        return ""
    fields = [f.alias or n for n, f in parent.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(fields)})"


def _model_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that a config path points into, for suggestions."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            if model is Config:
                return None
            if part in ("canary", "progressive", "final"):
                return None
            continue  # a dict key such as a plan or gate name
        model = _inner_model(field.annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _at(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...], message: str) -> str:
    path = ".".join(str(p) for p in loc) or "(top)"
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return f"{lines[loc[:end]]}: {path}: {message}"
    return f" {path}: {message}"


def _too_big(root: yaml.Node) -> str | None:
    """Why the composed document is too deep or expands too far, or None. Walks the node
    graph without recursion, following each alias as often as it is used."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, level = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            return (
                f"{node.start_mark.line + 1}: the document expands to more than "
                f"{MAX_YAML_NODES:,} values (aliases of aliases?); a config needs far fewer"
            )
        if level > MAX_YAML_DEPTH:
            line = node.start_mark.line + 1
            return f"{line}: the document nests deeper than {MAX_YAML_DEPTH} levels"
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, level + 1))
                stack.append((value, level + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, level + 1) for item in node.value)
    return None


def _line_numbers(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each path in the document (('rollouts', 0, 'plan')) to its 1-based line."""
    found = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            found.update(_line_numbers(value, sub))
            found[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.update(_line_numbers(item, (*path, i)))
    return found


_HHMM = re.compile(r"^(\d\d):(\d\d)$")


def daily_summary_time(config: Config) -> tuple[int, int]:
    match = _HHMM.match(config.daily_summary)
    assert match is not None  # validated by the model's pattern
    return int(match[1]), int(match[2])
