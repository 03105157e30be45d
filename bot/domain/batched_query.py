"""One PromQL query for every rollout that shares a gate. Pure: text in, text out.

A gate's query names its rollout's flag as `{flag}` (`sum(rate(errors{flag="{flag}"}[5m]))`).
Where the query keeps the flag's label on every series it answers, one query serves every
rollout: the flag matcher becomes a regex over the flags measured (`flag=~"a|b|c"`, each
name escaped), every aggregation keeps the label (`sum by (flag) (…)`), every vector
match matches on it (`on (job, flag)`), and each series of the answer goes back to the
rollout whose flag it carries. A query that could mix flags or answer without the label
(`vector()`, `absent()`, `or vector(0)`, `label_replace`, `topk`, `scalar`, `without` or
`ignoring` the flag label, a selector that does not name the flag) is not batched: it is
measured once per rollout, as written, and `plan` says why.

The query is parsed and printed with a real PromQL parser (promql-parser); printing is
ours, so that label values are quoted as PromQL reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import promql_parser as pq

PLACEHOLDER = "{flag}"  # what a gate's query says where the rollout's flag goes
_SENTINEL = "__rollout_bot_flag__"  # stands for the flag while the query is parsed
_FLAGS = "__rollout_bot_flags__"  # where the regex over the flags goes in a batch

# Aggregations that keep a label they group by (a `by` list gains the flag label).
_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "quantile"}

# Functions that answer one series for each series of their vector argument, with its
# labels (less `__name__`, and `le` for histogram_quantile): the flag label survives them.
_KEEP_LABELS = {
    "abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "round", "clamp",
    "clamp_min", "clamp_max", "rate", "irate", "increase", "delta", "idelta", "deriv",
    "predict_linear", "resets", "changes", "avg_over_time", "min_over_time",
    "max_over_time", "sum_over_time", "count_over_time", "quantile_over_time",
    "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time",
    "histogram_quantile", "histogram_fraction", "histogram_count", "histogram_sum",
    "histogram_avg", "holt_winters", "double_exponential_smoothing",
}

# Why a function cannot be batched, for the ones a gate's query most often uses.
_WHY_NOT = {
    "vector": "`vector()` answers one series without the flag label, the same for every flag",
    "absent": "`absent()` answers without the flag label",
    "absent_over_time": "`absent_over_time()` answers without the flag label",
    "scalar": "`scalar()` drops the flag label",
    "label_replace": "`label_replace()` may rewrite the flag label",
    "label_join": "`label_join()` may rewrite the flag label",
    "time": "`time()` answers without the flag label",
}

_VECTOR, _SCALAR = "vector", "scalar"


@dataclass(frozen=True)
class Batched:
    """A gate query that serves every rollout at once, grouped by `label`."""

    label: str
    template: str  # the query, with the flags' regex still to fill in

    def query(self, flags: Iterable[str]) -> str:
        """The query over these flags: its series carry `label`, one value per flag."""
        regex = "|".join(escape_regex(f) for f in sorted(set(flags)))
        return self.template.replace(f'"{_FLAGS}"', _quoted(regex))


@dataclass(frozen=True)
class PerRollout:
    """A gate query measured once per rollout, and why it cannot be batched."""

    reason: str


def plan(query: str) -> Batched | PerRollout:
    """Whether `query` (with `{flag}`) can be measured for many flags at once, and how."""
    if PLACEHOLDER not in query:
        return PerRollout("the query does not name `{flag}`: it is the same for every flag")
    if _SENTINEL in query or _FLAGS in query:
        return PerRollout("the query uses a name the batching reserves")
    try:
        expr = pq.parse(query.replace(PLACEHOLDER, _SENTINEL))
    except Exception as exc:  # the parser raises ValueError-like errors of its own
        return PerRollout(f"the query does not parse as PromQL: {str(exc)[:200]}")
    printer = _Printer()
    try:
        text, kind = printer.print(expr)
    except _NotBatchable as exc:
        return PerRollout(str(exc))
    if kind != _VECTOR:
        return PerRollout("the query answers a scalar, not a series per flag")
    assert printer.label is not None  # a vector that named `{flag}` has a flag label
    return Batched(printer.label, text)


def escape_regex(text: str) -> str:
    """`text` as a regex that matches it literally (RE2, as Prometheus reads it)."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


_REGEX_SPECIAL = set("\\.+*?()|[]{}^$")


class _NotBatchable(Exception):
    pass


class _Printer:
    """Prints a parsed query as PromQL, rewritten to keep the flag label throughout."""

    def __init__(self) -> None:
        self.label: str | None = None  # the label `{flag}` is matched on

    def print(self, node: Any) -> tuple[str, str]:
        if isinstance(node, pq.NumberLiteral):
            return str(node), _SCALAR
        if isinstance(node, pq.ParenExpr):
            text, kind = self.print(node.expr)
            return f"({text})", kind
        if isinstance(node, pq.UnaryExpr):
            text, kind = self.print(node.expr)
            return f"-{text}", kind
        if isinstance(node, pq.VectorSelector):
            return self._selector(node) + _offset(node.offset), _VECTOR
        if isinstance(node, pq.MatrixSelector):
            vs = node.vector_selector
            text = f"{self._selector(vs)}[{pq.display_duration(node.range)}]"
            return text + _offset(vs.offset), _VECTOR
        if isinstance(node, pq.SubqueryExpr):
            if node.at is not None:
                raise _NotBatchable("an `@` modifier")
            text = self._vector(node.expr)
            if node.range is None:
                raise _NotBatchable("a subquery without a range")
            step = f":{pq.display_duration(node.step)}" if node.step else ":"
            text = f"{text}[{pq.display_duration(node.range)}{step}]"
            return text + _offset(node.offset), _VECTOR
        if isinstance(node, pq.Call):
            return self._call(node), _VECTOR
        if isinstance(node, pq.AggregateExpr):
            return self._aggregate(node), _VECTOR
        if isinstance(node, pq.BinaryExpr):
            return self._binary(node)
        raise _NotBatchable(f"`{node}` ({type(node).__name__}) is not known to keep the flag label")

    def _vector(self, node: Any) -> str:
        text, kind = self.print(node)
        if kind != _VECTOR:
            raise _NotBatchable(f"`{text}` is a scalar where a series per flag is needed")
        return text

    def _selector(self, node: Any) -> str:
        if node.at is not None:
            raise _NotBatchable("an `@` modifier")
        if node.matchers.or_matchers:
            raise _NotBatchable("`or` between label matchers")
        parts, named = [], False
        for m in node.matchers.matchers:
            if _SENTINEL in m.value:
                if m.value != _SENTINEL or m.op != pq.MatchOp.Equal:
                    raise _NotBatchable(
                        f'`{{flag}}` must be a whole label value matched with `=` ({m.name}="…")'
                    )
                if self.label not in (None, m.name):
                    raise _NotBatchable(
                        f"`{{flag}}` is matched on two labels ({self.label}, {m.name})"
                    )
                self.label, named = m.name, True
                parts.append(f'{m.name}=~"{_FLAGS}"')
            else:
                parts.append(f"{m.name}{_MATCH_OPS[str(m.op)]}{_quoted(m.value)}")
        if not named:
            raise _NotBatchable(
                f"the selector `{node.name or ''}{{…}}` does not select by `{{flag}}`"
            )
        return f"{node.name or ''}{{{','.join(parts)}}}"

    def _call(self, node: Any) -> str:
        name = node.func.name
        if name not in _KEEP_LABELS:
            why = _WHY_NOT.get(name, f"`{name}()` is not known to keep the flag label")
            raise _NotBatchable(why)
        args = []
        vectors = 0
        for arg in node.args:
            text, kind = self.print(arg)
            vectors += kind == _VECTOR
            args.append(text)
        if vectors != 1:
            raise _NotBatchable(f"`{name}()` without exactly one series argument")
        return f"{name}({', '.join(args)})"

    def _aggregate(self, node: Any) -> str:
        op = str(node.op)
        if op not in _AGGREGATIONS:
            raise _NotBatchable(f"`{op}` picks or counts series across flags")
        inner = self._vector(node.expr)
        param = ""
        if node.param is not None:
            text, kind = self.print(node.param)
            if kind != _SCALAR:
                raise _NotBatchable(f"`{op}` with a parameter that is not a number")
            param = f"{text}, "
        label = self._label()
        modifier = node.modifier
        if modifier is not None and modifier.type == pq.AggModifierType.Without:
            if label in modifier.labels:
                raise _NotBatchable(f"`without ({label})` drops the flag label")
            grouping = f"without ({', '.join(modifier.labels)})"
        else:
            labels = modifier.labels if modifier is not None else []
            grouping = f"by ({', '.join(_with(labels, label))})"
        return f"{op} {grouping} ({param}{inner})"

    def _binary(self, node: Any) -> tuple[str, str]:
        lhs, left = self.print(node.lhs)
        rhs, right = self.print(node.rhs)
        op = str(node.op)
        modifier = node.modifier
        words = [op]
        if modifier is not None and modifier.return_bool:
            words.append("bool")
        if left == right == _SCALAR:
            return f"{lhs} {' '.join(words)} {rhs}", _SCALAR
        if left == right == _VECTOR and modifier is not None:
            fill = modifier.fill_values
            if fill is not None and (fill.lhs is not None or fill.rhs is not None):
                raise _NotBatchable("`fill` in a vector match")
            matching = modifier.matching
            label = self._label()
            if matching is not None and matching.type == pq.LabelModifierType.Include:
                words.append(f"on ({', '.join(_with(matching.labels, label))})")
            elif matching is not None:
                if label in matching.labels:
                    raise _NotBatchable(f"`ignoring ({label})` matches series of different flags")
                words.append(f"ignoring ({', '.join(matching.labels)})")
            card = modifier.card
            sides = (  # pairs: the parser's enum values are not hashable
                (pq.VectorMatchCardinality.ManyToOne, "group_left"),
                (pq.VectorMatchCardinality.OneToMany, "group_right"),
            )
            for cardinality, side in sides:
                if card == cardinality:
                    words.append(f"{side} ({', '.join(modifier.group_labels or [])})")
        return f"{lhs} {' '.join(words)} {rhs}", _VECTOR

    def _label(self) -> str:
        if self.label is None:
            raise _NotBatchable("an aggregation or match before any selector names `{flag}`")
        return self.label


_MATCH_OPS = {  # by the operator's name: the parser's enum values are not hashable
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}


def _with(labels: Iterable[str], label: str) -> list[str]:
    """A grouping's labels with the flag label among them."""
    labels = list(labels)
    return labels if label in labels else [*labels, label]


def _quoted(value: str) -> str:
    """A PromQL double-quoted string (Go's escapes, which JSON's are a subset of)."""
    return json.dumps(value, ensure_ascii=False)


def _offset(offset: Any) -> str:
    if not offset:
        return ""
    if offset.total_seconds() < 0:
        return f" offset -{pq.display_duration(-offset)}"
    return f" offset {pq.display_duration(offset)}"
