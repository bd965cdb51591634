"""The benchmark's tables and goals, as markdown."""

from __future__ import annotations

import statistics
from collections import defaultdict

from .delegation import Delegation, table
from .live import Latency, LiveResult, Load, percentile
from .measure import Cost, LongRun, Timing

BARE = "bare"
DEFAULT = "durable-agent"
FAST = "durable-agent fast"

# The goals of the issue "One loop a reader can hold in their head", item 6.
DEFAULT_MAX_RATIO = 0.8
"""Default mode's time a turn, as a fraction of bare's, at most."""
FAST_MAX_RATIO = 0.2
"""Fast mode's time a turn, as a fraction of bare's, at most."""
THROUGHPUT_MIN_RATIO = {8: 1.1, 32: 1.1}
"""Default mode's throughput over bare's, at least, by concurrency; elsewhere bare's."""
NO_HEARTBEATS = "durable-agent, no heartbeats"
HEARTBEAT_MAX_COST = 1.03
"""Heartbeats may cost a turn whose calls end before their first at most 3% (issue 10)."""
CRASH_MAX_SECONDS = 15.0
"""A worker SIGKILLed mid-call: another finishes the run within this long (issue 10)."""
LONG_RUN_MAX_BYTES = 2 * 1024 * 1024
"""Default mode's history for the long run (temporalio/sdk-python#1890), below this."""
OBSERVER_MAX_P50 = 0.1
"""Provider delta to observer, seconds, at the median, with 50 observers (issues 12, 20)."""
OBSERVER_ONE_MAX_P50 = 0.05
"""The same with one observer (issue 20)."""
STREAMED_MAX_BYTES, STREAMED_MAX_EVENTS = 5 * 1024, 2
"""History a stream may add per 1,000 streamed tokens over `stream=False` (issue 20)."""
CPU_PROCESSES = ("server", "worker", "serve", "observers", "machine")
MB = 1024 * 1024


class Report:
    def __init__(self) -> None:
        self.timings: dict[str, dict[int, Timing]] = defaultdict(dict)
        self.costs: dict[str, dict[tuple[int, int], Cost | str]] = defaultdict(dict)
        self.rates: dict[str, dict[int, float]] = defaultdict(dict)
        self.rss_mb: dict[str, float] = {}
        self.cpu_ms: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
        """Milliseconds of CPU a turn under the throughput runs: (dev server, worker)."""
        self.resumes: dict[str, float] = {}
        self.crashes: dict[str, float] = {}
        self.long_runs: dict[str, LongRun] = {}
        self.live_runs: list[LiveResult] = []
        self.delegated: Delegation | None = None
        self.notes: list[str] = []
        self.sections: list[list[str]] = []
        """Tables a measurement renders itself (bench/prompt_cache.py), in the order added."""

    def timing(self, name: str, turns: int, t: Timing) -> None:
        self.timings[name][turns] = t

    def cost(self, name: str, turns: int, size: int, c: Cost) -> None:
        self.costs[name][(turns, size)] = c

    def has_cost(self, name: str, turns: int, size: int) -> bool:
        return (turns, size) in self.costs[name]

    def failed(self, name: str, turns: int, size: int, reason: str) -> None:
        self.costs[name][(turns, size)] = f"failed: {reason}"

    def throughput(self, name: str, concurrency: int, rate: float) -> None:
        self.rates[name][concurrency] = rate

    def cpu(self, name: str, concurrency: int, server_ms: float, worker_ms: float) -> None:
        self.cpu_ms[name][concurrency] = (server_ms, worker_ms)

    def rss(self, name: str, mb: float) -> None:
        self.rss_mb[name] = mb

    def resume(self, label: str, seconds: float) -> None:
        self.resumes[label] = seconds

    def crash(self, label: str, seconds: float) -> None:
        self.crashes[label] = seconds

    def long_run(self, name: str, run: LongRun) -> None:
        self.long_runs[name] = run

    def live(self, results: list[LiveResult]) -> None:
        """One result per live bus (`bench.live.BUSES`)."""
        self.live_runs = results
        self.notes += [n for r in results for n in r.notes]

    def delegation(self, result: Delegation) -> None:
        self.delegated = result

    def note(self, text: str) -> None:
        self.notes.append(text)

    def _ratio(self, name: str, turns: int) -> float | None:
        base, mine = self.timings[BARE].get(turns), self.timings[name].get(turns)
        return mine.median / base.median if base and mine else None

    def markdown(self, header: str) -> str:
        out = ["# Benchmarks: the cost of durability", "", header, ""]
        out += self._timing_table() + self._cost_table() + self._throughput_table()
        out += self._long_run_table() + self._resume_table() + self._live_tables()
        out += table(self.delegated) if self.delegated is not None else []
        out += [line for section in self.sections for line in section]
        out += self._goals()
        if self.notes:
            out += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)

    def _timing_table(self) -> list[str]:
        if not self.timings:  # `--only live`
            return []
        turns = sorted({t for v in self.timings.values() for t in v})
        rows = [
            "## Per-turn wall time",
            "",
            "| variant | "
            + " | ".join(f"{t} turns: median ms (min-max), x bare" for t in turns)
            + " |",
            "|---|" + "---|" * len(turns),
        ]
        for name, by_turns in self.timings.items():
            cells = []
            for t in turns:
                m = by_turns.get(t)
                ratio = self._ratio(name, t)
                cells.append(
                    f"{_ms(m.median)} ({_ms(m.low)}-{_ms(m.high)}), {ratio:.2f}x"
                    if m and ratio is not None
                    else (_ms(m.median) if m else "-")
                )
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        return [*rows, ""]

    def _cost_table(self) -> list[str]:
        if not self.costs:  # `--only live`
            return []
        keys = sorted({k for v in self.costs.values() for k in v}, key=lambda k: (k[1], k[0]))
        rows = [
            "## History per turn (all runs of a continue-as-new chain)",
            "",
            "| variant | " + " | ".join(f"{t} turns, {s // 1024} KB out" for t, s in keys) + " |",
            "|---|" + "---|" * len(keys),
        ]
        for name, by_key in self.costs.items():
            cells = []
            for t, s in keys:
                c = by_key.get((t, s))
                if isinstance(c, Cost):
                    cells.append(
                        f"{c.events / t:.1f} ev, {c.bytes / t / 1024:.1f} KB"
                        + (f" ({c.runs} runs)" if c.runs > 1 else "")
                    )
                else:
                    cells.append(c or "-")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        return [*rows, ""]

    def _throughput_table(self) -> list[str]:
        if not self.rates:  # `--only live`
            return []
        ns = sorted({n for v in self.rates.values() for n in v})
        rows = [
            "## Throughput and memory",
            "",
            "| variant | "
            + " | ".join(f"{n} concurrent: turns/s" for n in ns)
            + " | worker peak RSS |",
            "|---|" + "---|" * (len(ns) + 1),
        ]
        for name, by_n in self.rates.items():
            rss = self.rss_mb.get(name)
            rows.append(
                f"| {name} | "
                + " | ".join(f"{by_n[n]:.1f}" if n in by_n else "-" for n in ns)
                + f" | {f'{rss:.0f} MB' if rss else '-'} |"
            )
        return [*rows, "", *self._cpu_table(ns)]

    def _cpu_table(self, ns: list[int]) -> list[str]:
        if not self.cpu_ms:
            return []
        rows = [
            "CPU a turn in the same runs, in ms, the dev server's / the worker process's "
            "(each summed over the rounds and divided by their turns; a timer the server set "
            "in one variant's round may fire in the next):",
            "",
            "| variant | " + " | ".join(f"{n} concurrent: server / worker" for n in ns) + " |",
            "|---|" + "---|" * len(ns),
        ]
        for name, by_n in self.cpu_ms.items():
            cells = [f"{by_n[n][0]:.1f} / {by_n[n][1]:.1f}" if n in by_n else "-" for n in ns]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        return [*rows, ""]

    def _long_run_table(self) -> list[str]:
        if not self.long_runs:
            return []
        first = next(iter(self.long_runs.values()))
        rows = [
            f"## One long run: {first.calls} model calls, each followed by a tool with "
            f"{first.size // 1024} KB output, then a final answer",
            "",
            "Users of Temporal's OpenAI Agents integration report that a conversation like this "
            "one reaches the run's 50 MB history limit (temporalio/sdk-python#1890). One run "
            "per variant with no continue-as-new asked for: a run continues only if the server "
            "suggests it. A run that fails is measured up to its end.",
            "",
            "| variant | completed | tool calls made | history | events | runs "
            "| server suggested continue-as-new | wall time |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, run in self.long_runs.items():
            rows.append(
                f"| {name} | {'yes' if run.failure is None else f'no: {run.failure}'} "
                f"| {run.tool_calls} of {run.calls} | {_mb(run.cost.bytes)} "
                f"| {run.cost.events:,} | {run.cost.runs} | {'yes' if run.suggested else 'no'} "
                f"| {run.seconds:.1f} s |"
            )
        return [*rows, ""]

    def _resume_table(self) -> list[str]:
        if not self.resumes:
            return []
        rows = [
            "## Resume latency (signal to completion, new worker)",
            "",
            "| case | seconds |",
            "|---|---|",
        ]
        rows += [f"| {label} | {s:.2f} |" for label, s in self.resumes.items()]
        rows.append("")
        if self.crashes:
            rows += [
                "## Crash mid-call (kill to the run's end, new worker at once, every default)",
                "",
                "| case | seconds |",
                "|---|---|",
            ]
            rows += [f"| {label} | {s:.1f} |" for label, s in self.crashes.items()]
            rows.append("")
        return rows

    def _goals(self) -> list[str]:
        checks: list[tuple[str, bool | None, str]] = []
        for t in sorted(self.timings[DEFAULT]):
            r = self._ratio(DEFAULT, t)
            checks.append(
                (
                    f"default mode ≤ {DEFAULT_MAX_RATIO}x bare per turn at {t} turns",
                    None if r is None else r <= DEFAULT_MAX_RATIO,
                    f"{r:.2f}x" if r else "-",
                )
            )
            f = self._ratio(FAST, t)
            checks.append(
                (
                    f"fast mode ≤ {FAST_MAX_RATIO}x bare per turn at {t} turns",
                    None if f is None else f <= FAST_MAX_RATIO,
                    f"{f:.2f}x" if f else "-",
                )
            )
        top = max((t for (t, s) in self.costs[DEFAULT] if s == 1024), default=None)
        mine, base = (
            self.costs[DEFAULT].get((top or 0, 1024)),
            self.costs[BARE].get((top or 0, 1024)),
        )
        if isinstance(mine, Cost) and isinstance(base, Cost) and top:
            checks.append(
                (
                    f"events per turn ≤ bare's at {top} turns (to 0.1)",
                    round(mine.events / top, 1) <= round(base.events / top, 1),
                    f"{mine.events / top:.2f} vs {base.events / top:.2f} "
                    f"({mine.events - base.events:+d} events a run)",
                )
            )
        for size in sorted({s for (_, s) in self.costs[DEFAULT]}):
            per = {
                t: c.bytes / t
                for (t, s), c in self.costs[DEFAULT].items()
                if s == size and isinstance(c, Cost)
            }
            if len(per) > 1:
                lo, hi = per[min(per)], per[max(per)]
                checks.append(
                    (
                        f"history bytes per turn flat, {size // 1024} KB outputs, "
                        f"{min(per)} to {max(per)} turns",
                        hi <= lo * 1.25,
                        f"{lo / 1024:.1f} → {hi / 1024:.1f} KB",
                    )
                )
        big = self.costs[DEFAULT].get((300, 50 * 1024))
        if big is not None:
            checks.append(
                (
                    "300-turn run with 50 KB outputs completes",
                    isinstance(big, Cost),
                    "yes" if isinstance(big, Cost) else str(big),
                )
            )
        for n in sorted(n for n in self.rates[DEFAULT] if n in self.rates[BARE]):
            mine_rate, base_rate = self.rates[DEFAULT][n], self.rates[BARE][n]
            least = THROUGHPUT_MIN_RATIO.get(n, 1.0)
            checks.append(
                (
                    f"default mode throughput ≥ {least}x bare's at {n} concurrent",
                    mine_rate >= base_rate * least,
                    f"{mine_rate:.1f} vs {base_rate:.1f} turns/s ({mine_rate / base_rate:.2f}x)",
                )
            )
        for n in sorted(n for n in self.cpu_ms[DEFAULT] if n in self.cpu_ms[BARE]):
            mine_ms, base_ms = self.cpu_ms[DEFAULT][n][0], self.cpu_ms[BARE][n][0]
            checks.append(
                (
                    f"dev server CPU a turn ≤ bare's at {n} concurrent",
                    mine_ms <= base_ms,
                    f"{mine_ms:.1f} vs {base_ms:.1f} ms ({mine_ms / base_ms:.2f}x)",
                )
            )
        for label, limit in (
            ("SIGKILL, sticky 1 s (durable-agent default)", 1.5),
            ("graceful stop (SIGTERM), sticky 1 s", 0.25),
        ):
            if label in self.resumes:
                checks.append(
                    (
                        f"resume after {label.split(',')[0]} ≤ {limit} s",
                        self.resumes[label] <= limit,
                        f"{self.resumes[label]:.2f} s",
                    )
                )
        for label, seconds in self.crashes.items():
            checks.append(
                (
                    f"{label}: another worker finishes the run ≤ {CRASH_MAX_SECONDS:.0f} s after",
                    seconds <= CRASH_MAX_SECONDS,
                    f"{seconds:.1f} s",
                )
            )
        for turns in sorted(self.timings[NO_HEARTBEATS]):
            beating = self.timings[DEFAULT].get(turns)
            without = self.timings[NO_HEARTBEATS][turns]
            if beating is not None:
                cost = beating.median / without.median
                checks.append(
                    (
                        f"heartbeats cost ≤ {HEARTBEAT_MAX_COST - 1:.0%} a turn at {turns} turns",
                        cost <= HEARTBEAT_MAX_COST,
                        f"{cost:.3f}x",
                    )
                )
        long = self.long_runs.get(DEFAULT)
        if long is not None:
            others = "; ".join(
                f"{name}: {_mb(run.cost.bytes)}"
                + (f", failed after {run.tool_calls} tool calls" if run.failure else "")
                for name, run in self.long_runs.items()
                if name != DEFAULT
            )
            checks.append(
                (
                    f"history < {LONG_RUN_MAX_BYTES // MB} MB in one run of {long.calls} calls "
                    f"with {long.size // 1024} KB tool outputs, completed, no continue-as-new",
                    long.failure is None
                    and long.cost.runs == 1
                    and long.cost.bytes < LONG_RUN_MAX_BYTES,
                    f"{_mb(long.cost.bytes)}, {long.cost.runs} run(s), "
                    + ("completed" if long.failure is None else f"failed: {long.failure}")
                    + (f" ({others})" if others else ""),
                )
            )
        checks += self._live_goals()
        rows = ["## Goals", "", "| goal | met | measured |", "|---|---|---|"]
        rows += [
            f"| {g} | {'yes' if ok else ('no' if ok is False else '-')} | {m} |"
            for g, ok, m in checks
        ]
        return [*rows, ""]

    def _live_tables(self) -> list[str]:
        return [row for live in self.live_runs for row in self._live_table(live)]

    def _live_table(self, live: LiveResult) -> list[str]:
        cost = live.cost
        extra_bytes = cost.streamed.bytes - cost.unstreamed.bytes
        extra_events = cost.streamed.events - cost.unstreamed.events
        extra_tasks = cost.tasks[0] - cost.tasks[1]
        rows = [
            f"## Live runs: streaming to observers, {live.bus} (issues 12, 20)",
            "",
            f"A model streaming {live.rate:.0f} tokens/s; provider delta to observer on the "
            "same clock. One observer reading `AgentClient.events`: "
            f"{_latency(live.latency)}.",
            "",
            f"History of one {cost.tokens}-token call with `Agent(stream=True)` (the default) "
            "and `stream=False`, and the difference per 1,000 streamed tokens:",
            "",
            "| | history | events | workflow tasks | signals |",
            "|---|---|---|---|---|",
            f"| stream=True | {cost.streamed.bytes / 1024:.1f} KB | {cost.streamed.events} "
            f"| {cost.tasks[0]} | {cost.signals[0]} |",
            f"| stream=False | {cost.unstreamed.bytes / 1024:.1f} KB | {cost.unstreamed.events} "
            f"| {cost.tasks[1]} | {cost.signals[1]} |",
            f"| per 1,000 streamed tokens | +{cost.per_thousand(extra_bytes) / 1024:.1f} KB "
            f"| +{cost.per_thousand(extra_events):.0f} | +{cost.per_thousand(extra_tasks):.0f} "
            f"| {cost.per_thousand(cost.signals[0] - cost.signals[1]):.0f} |",
            "",
            "Deltas travel on the live bus, beside the run (issue 20): the goal is at most "
            "+5 KB, 2 events and no signal or workflow task per 1,000 streamed tokens.",
            "",
            "Observers on one streaming run, with user messages (`submit_user_message` updates, "
            "no client retry) sent during its call; run wall time from start to result, median "
            "of the repeats; CPU seconds a run by process, and the whole machine's (what other "
            "processes took is the difference):",
            "",
            "| observers | run wall time | vs none | observer latency | updates sent "
            "| refused | RPC errors | update latency p50 / p95 "
            f"| CPU a run: {' / '.join(CPU_PROCESSES)} |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        base = _median(live.loads[0].walls) if live.loads else None
        for load in live.loads:
            wall = _median(load.walls)
            ratio = f"{wall / base:.2f}x" if wall is not None and base else "-"
            p50 = percentile(load.update_latencies, 0.5)
            p95 = percentile(load.update_latencies, 0.95)
            rows.append(
                f"| {load.label} | {f'{wall:.2f} s' if wall is not None else '-'} | {ratio} "
                f"| {_latency(load.latency) if load.observers else '-'}"
                f"{f', {load.incomplete} observers never saw the end' if load.incomplete else ''}"
                f" | {load.updates} "
                f"| {load.refused} | {len(load.errors)} "
                f"| {_ms(p50) if p50 is not None else '-'} / "
                f"{_ms(p95) if p95 is not None else '-'} ms | {_cpu(load)} |"
            )
        first = live.first_token
        rows += [
            "",
            "Time to first token (from the client's first call to the first text it shows), "
            "interleaved repeats:",
            "",
            "| client | p50 | runs |",
            "|---|---|---|",
            f"| `send` (update-with-start) + `events` | {_seconds(_median(first.send))} "
            f"| {len(first.send)} |",
            f"| `start` + `history` query every 250 ms (before `events`) "
            f"| {_seconds(_median(first.poll))} | {len(first.poll)} |",
            "",
        ]
        many = live.many
        if many is not None:
            cpu = " / ".join(f"{many.cpu[p]:.2f}" if p in many.cpu else "-" for p in CPU_PROCESSES)
            rows += [
                f"{many.runs} runs streaming {many.tokens} tokens each at once on one worker, "
                "one `AgentClient.events` reader each:",
                "",
                "| replies whole | readers' deltas add up | saw none | told unavailable "
                "| short, nothing said | wall time "
                f"| CPU s per 1,000 streamed tokens: {' / '.join(CPU_PROCESSES)} |",
                "|---|---|---|---|---|---|---|",
                f"| {many.whole} of {many.runs} | {many.added_up} of {many.runs} "
                f"| {many.none} | {many.told} | {many.short} | {many.wall:.1f} s | {cpu} |",
                "",
            ]
        return rows

    def _live_goals(self) -> list[tuple[str, bool | None, str]]:
        return [
            (f"{live.bus}: {goal}", ok, measured)
            for live in self.live_runs
            for goal, ok, measured in self._bus_goals(live)
        ]

    def _bus_goals(self, live: LiveResult) -> list[tuple[str, bool | None, str]]:
        checks: list[tuple[str, bool | None, str]] = []
        cost = live.cost
        extra_bytes = cost.per_thousand(cost.streamed.bytes - cost.unstreamed.bytes)
        extra_events = cost.per_thousand(cost.streamed.events - cost.unstreamed.events)
        extra_signals = cost.per_thousand(cost.signals[0] - cost.signals[1])
        extra_tasks = cost.per_thousand(cost.tasks[0] - cost.tasks[1])
        checks.append(
            (
                f"history per 1,000 streamed tokens ≤ +{STREAMED_MAX_BYTES // 1024} KB and "
                f"≤ {STREAMED_MAX_EVENTS} events, no signal, no workflow task",
                extra_bytes <= STREAMED_MAX_BYTES
                and extra_events <= STREAMED_MAX_EVENTS
                and extra_signals <= 0
                and extra_tasks <= 0,
                f"+{extra_bytes / 1024:.1f} KB, +{extra_events:.0f} events, "
                f"{extra_signals:.0f} signals, +{extra_tasks:.0f} workflow tasks",
            )
        )
        watched = [("1 observer", live.latency, OBSERVER_ONE_MAX_P50)]
        watched += [
            (load.label, load.latency, OBSERVER_MAX_P50) for load in live.loads if load.observers
        ]
        for label, latency, most in watched:
            p50 = latency.p(0.5)
            checks.append(
                (
                    f"observer latency p50 ≤ {most * 1000:.0f} ms, {label}",
                    None if p50 is None else p50 <= most,
                    _latency(latency),
                )
            )
        many = live.many
        if many is not None:
            checks.append(
                (
                    f"{many.runs} runs streaming at once: every reply whole, every reader's "
                    "deltas add up to its message",
                    many.whole == many.added_up == many.runs and not many.errors,
                    f"{many.whole} whole, {many.added_up} add up, {many.none} saw none, "
                    f"{many.told} told unavailable, {many.short} short"
                    + (
                        f", {len(many.errors)} errors (first: {many.errors[0][:80]})"
                        if many.errors
                        else ""
                    ),
                )
            )
        loaded = [load for load in live.loads if load.observers]
        if loaded:
            refused = sum(load.refused for load in loaded)
            errors = [e for load in loaded for e in load.errors]
            checks.append(
                (
                    "updates during a watched call: none refused, no RPC errors",
                    refused == 0 and not errors,
                    f"{sum(load.updates for load in loaded)} sent, {refused} refused, "
                    f"{len(errors)} errors" + (f" (first: {errors[0][:80]})" if errors else ""),
                )
            )
        send, poll = _median(live.first_token.send), _median(live.first_token.poll)
        if send is not None and poll is not None:
            checks.append(
                (
                    "time to first token: `send` + `events` sooner than start-then-poll",
                    send < poll,
                    f"{_seconds(send)} vs {_seconds(poll)} ({send / poll:.2f}x)",
                )
            )
        return checks


def _median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def _latency(latency: Latency) -> str:
    """Delta latency over the deltas seen, how many were, and when text was shown at all."""
    p50, p95 = latency.p(0.5), latency.p(0.95)
    shown50, shown95 = percentile(latency.shown, 0.5), percentile(latency.shown, 0.95)
    deltas = (
        f"p50 {_ms(p50)} ms, p95 {_ms(p95)} ms over the {latency.coverage:.0%} of deltas seen"
        if p50 is not None and p95 is not None
        else "no deltas seen"
    )
    shown = (
        f"; text shown (delta, else message) p50 {_ms(shown50)} ms, p95 {_ms(shown95)} ms"
        if shown50 is not None and shown95 is not None
        else ""
    )
    return deltas + shown


def _cpu(load: Load) -> str:
    """Median CPU seconds a run, by process."""
    used = [load.cpu_median(p) for p in CPU_PROCESSES]
    return " / ".join("-" if u is None else f"{u:.2f}" for u in used) + " s"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _mb(size: int) -> str:
    return f"{size / MB:.2f} MB"


def _ms(seconds: float) -> str:
    """Milliseconds, with enough digits for the asyncio floor's microseconds."""
    ms = seconds * 1000
    return f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"
