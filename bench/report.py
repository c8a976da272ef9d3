"""The bench's result: one structure, printed as JSON or as a few lines for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import LATE_START
from bench.meters import BENCH


@dataclass
class BenchResult:
    config: dict[str, Any]
    accept: dict[str, Any]
    end_to_end: dict[str, Any]
    statuses: dict[str, int]
    processes: list[dict[str, Any]]
    cpu: dict[str, Any]
    correctness: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    log_dir: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def _ms(summary: dict[str, Any]) -> str:
    parts = [f"{k} {v:.1f}" for k, v in summary.items() if v is not None]
    return " / ".join(parts) + " ms" if parts else "n/a"


def _num(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,}{unit}"


def _mib(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.1f} MiB"


def render_text(result: BenchResult) -> str:
    c, a, e = result.config, result.accept, result.end_to_end
    lines = [
        f"smsbroker bench: {c['messages']:,} messages, concurrency {c['concurrency']}, "
        + (f"{c['rate']:g} requests/s scheduled, " if c.get("rate") is not None else "")
        + f"{c['recipients_per_request']} recipient(s)/request, {c['segments']} segment(s), "
        + (
            "in one process"
            if c["in_process"]
            else f"{c['api_procs']} api + {c['worker_procs']} worker process(es)"
        ),
        "",
        f"accept      {_num(a['rate'], ' msg/s')}  ({a['accepted']:,} accepted in "
        f"{a['seconds']} s, {_num(a['requests_per_s'], ' req/s')})",
        f"            HTTP 202 latency {_ms(a['latency_ms'])}" + _schedule(c, a),
        f"end to end  {_num(e['rate'], ' msg/s')}  ({e['completed']:,} final webhooks in "
        f"{e['seconds']} s)",
        f"            request -> webhook {_ms(e['latency_ms'])}",
        "statuses    "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(result.statuses.items())) or "none"),
        "",
        f"{'process':28} {'n':>3} {'peak RSS':>12} {'CPU s':>9} {'RSS at 10%':>12}"
        f" {'RSS at end':>12}",
    ]
    for p in result.processes:
        at = p.get("rss_kb_at") or {}
        lines.append(
            f"{p['name']:28} {p['processes']:>3} {_mib(p['peak_rss_kb']):>12} {_num(p['cpu_s']):>9}"
            f" {_mib(at.get('a tenth done')):>12} {_mib(at.get('end')):>12}"
        )
    lines.append(
        "peak RSS: VmHWM; for RabbitMQ, which predates the run, the largest VmRSS sampled during"
        " it. CPU: seconds used during the load."
    )
    cpu = result.cpu
    lines += [
        f"CPU per message: {_num(cpu['ms_per_message'], ' ms')} ({cpu['scope']})",
        "",
        _correctness_line(result.correctness),
    ]
    if result.problems:
        lines.append("FAILED: " + "; ".join(result.problems))
        if result.log_dir:
            lines.append(f"logs: {result.log_dir}")
    else:
        lines.append("OK: nothing lost, books balance")
    return "\n".join(lines)


def _schedule(config: dict[str, Any], accept: dict[str, Any]) -> str:
    """At a fixed rate the latency counts from each request's scheduled time; say so, and how
    many requests went out late (a held-back request's wait is in its latency)."""
    if config.get("rate") is None:
        return ""
    late = accept.get("late_starts") or 0
    return f" from schedule; {late:,} started over {LATE_START * 1000:.0f} ms late"


def _correctness_line(k: dict[str, Any]) -> str:
    stuck = ""
    if k["lost"]:
        stuck = "\nin the database: " + ", ".join(f"{s} {n:,}" for s, n in k["db_statuses"].items())
    return (
        f"lost {k['lost']:,}, duplicate webhooks {k['duplicate_webhooks']:,}, "
        f"messages in db {k['messages_in_db']:,}; balance {k['balance']} = "
        f"{k['initial_credits']} - charged {k['charged']}: {'yes' if k['balance_ok'] else 'NO'}; "
        f"ledger sum {k['ledger_sum']}: {'yes' if k['ledger_ok'] else 'NO'}" + stuck
    )


def cpu_summary(
    processes: list[dict[str, Any]], completed: int, in_process: bool
) -> dict[str, Any]:
    """CPU-ms per completed message over the gateway's processes (RabbitMQ and PostgreSQL too).

    Out of process, the bench's own load generator and receiver are left out; in one process
    they cannot be told apart from the gateway and are included.
    """
    counted = [
        p["cpu_s"]
        for p in processes
        if p["cpu_s"] is not None and (in_process or p["name"] != BENCH)
    ]
    total = sum(counted)
    scope = (
        "bench process (whole gateway inside), rabbitmq, postgres"
        if in_process
        else ("api, workers, carrier, rabbitmq, postgres; bench excluded")
    )
    per = round(total * 1000 / completed, 3) if completed else None
    return {"total_s": round(total, 3), "ms_per_message": per, "scope": scope}
