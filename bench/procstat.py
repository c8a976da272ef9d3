"""Peak memory and CPU time of processes, read from /proc (Linux); None where unreadable.

VmHWM is the peak resident set size. For PostgreSQL backends and RabbitMQ it counts the shared
memory pages a process touched, so their figures overlap and are not to be summed as private
memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def peak_rss_kb(pid: int, proc: Path = PROC, *, field: str = "VmHWM") -> int | None:
    """VmHWM (or another size field, such as VmRSS) of a live process in KiB."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    return parse_status_field(text, field)


def parse_status_field(text: str, name: str) -> int | None:
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key == name:
            digits = value.strip().split()[0] if value.strip() else ""
            return int(digits) if digits.isdigit() else None
    return None


def cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User + system CPU time a live process has used."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return parse_stat_cpu(text)


def parse_stat_cpu(text: str) -> float | None:
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    _, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 13:
        return None
    utime, stime = fields[11], fields[12]  # fields 14 and 15 of the whole line
    if not (utime.isdigit() and stime.isdigit()):
        return None
    return (int(utime) + int(stime)) / _TICKS


def pids_named(comm: str, proc: Path = PROC) -> list[int]:
    """Every process whose command name is ``comm`` (e.g. beam.smp)."""
    found: list[int] = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == comm:
                found.append(int(entry.name))
        except OSError:
            continue
    return sorted(found)


def is_named(pid: int, comm: str, proc: Path = PROC) -> bool:
    try:
        return (proc / str(pid) / "comm").read_text().strip() == comm
    except OSError:
        return False


@dataclass
class Tracked:
    """One process (or a group, such as PostgreSQL backends) whose figures are reported."""

    name: str
    #: For a process older than the run (RabbitMQ), VmHWM is the peak of its whole life: the
    #: largest VmRSS seen while sampling is reported instead.
    sampled_rss: bool = False
    pids: set[int] = field(default_factory=set)
    peak_kb: dict[int, int] = field(default_factory=dict)
    cpu_start: dict[int, float] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)

    def add(self, pid: int, *, baseline: bool) -> None:
        if pid in self.pids:
            return
        self.pids.add(pid)
        if baseline:
            start = cpu_seconds(pid)
            if start is not None:
                self.cpu_start[pid] = start
        self.sample()

    def baseline(self) -> None:
        """From now on CPU is counted (start-up work such as imports is left out)."""
        for pid in self.pids:
            start = cpu_seconds(pid)
            if start is not None:
                self.cpu_start[pid] = start

    def sample(self) -> None:
        """Record what live processes show; an exited process keeps its last reading."""
        for pid in self.pids:
            peak = peak_rss_kb(pid, field="VmRSS" if self.sampled_rss else "VmHWM")
            if peak is not None:
                self.peak_kb[pid] = max(peak, self.peak_kb.get(pid, 0))
            cpu = cpu_seconds(pid)
            if cpu is not None:
                self.cpu_last[pid] = cpu

    def rss_now_kb(self) -> int | None:
        """What the group's live processes hold now (VmRSS, summed)."""
        found = [peak_rss_kb(pid, field="VmRSS") for pid in self.pids]
        held = [kb for kb in found if kb is not None]
        return sum(held) if held else None

    @property
    def peak_rss_kb(self) -> int | None:
        """The largest peak of the group's processes."""
        return max(self.peak_kb.values()) if self.peak_kb else None

    @property
    def cpu_s(self) -> float | None:
        if not self.cpu_last:
            return None
        used = sum(last - self.cpu_start.get(pid, 0.0) for pid, last in self.cpu_last.items())
        return round(used, 3)
