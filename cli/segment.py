"""`smsbroker segment`: show how a text will be split and billed, one text or a JSONL stream."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from broker.errors import InputError
from broker.segmentation import DEFAULT_MAX_CHARS, Segmentation, split

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "segment",
        help="show the encoding and SMS parts of a text",
        description=(
            "Show the encoding (GSM7 or UCS2) and the SMS parts a text is sent as. "
            "With --jsonl, read one JSON string per line from standard input."
        ),
    )
    parser.add_argument("text", nargs="?", metavar="TEXT", help="the message body")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one line of JSON")
    output.add_argument(
        "--jsonl", action="store_true", help="JSON string per input line -> JSON object per line"
    )
    parser.add_argument(
        "--udh16", action="store_true", help="count parts for a 16-bit concatenation reference"
    )
    parser.add_argument(
        "--max-chars",
        type=_positive_int,
        default=DEFAULT_MAX_CHARS,
        metavar="N",
        help=f"longest body accepted, in characters (default {DEFAULT_MAX_CHARS})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.jsonl:
        if args.text is not None:
            return _fail("--jsonl reads standard input; do not also give TEXT")
        return run_jsonl(_stdin_lines(), sys.stdout, udh16=args.udh16, max_chars=args.max_chars)
    if args.text is None:
        return _fail("give the TEXT to segment, or --jsonl to read standard input")
    try:
        seg = split(args.text, udh16=args.udh16, max_chars=args.max_chars)
    except InputError as exc:
        return _fail(f"{exc.message} ({exc.code})")
    if args.json:
        print(_dumps(as_dict(seg)))
    else:
        print(summary(seg))
    return EXIT_OK


def run_jsonl(lines: Iterable[bytes], out: TextIO, *, udh16: bool, max_chars: int) -> int:
    """One output line per input line; exit code 2 at the end if any line failed."""
    failed = False
    for number, raw in enumerate(lines, start=1):
        try:
            text = _parse_line(raw, number)
            result = as_dict(split(text, udh16=udh16, max_chars=max_chars))
        except InputError as exc:
            failed = True
            result = {"error": {"code": exc.code, "message": exc.message}}
        out.write(_dumps(result) + "\n")
    out.flush()
    return EXIT_BAD_INPUT if failed else EXIT_OK


def as_dict(seg: Segmentation) -> dict[str, Any]:
    return {
        "encoding": seg.encoding.value,
        "segments": seg.segments,
        "parts": list(seg.parts),
        "part_units": list(seg.part_units),
    }


def summary(seg: Segmentation) -> str:
    unit = "septets" if seg.encoding == "GSM7" else "UTF-16 units"
    lines = [f"encoding: {seg.encoding.value}", f"segments: {seg.segments}"]
    for index, (part, units) in enumerate(zip(seg.parts, seg.part_units, strict=True), 1):
        lines.append(f"part {index}: {units} {unit}: {_dumps(part)}")
    return "\n".join(lines)


def _parse_line(raw: bytes, number: int) -> str:
    try:
        value = json.loads(raw.decode("utf-8").rstrip("\r\n"))
    except UnicodeDecodeError as exc:
        raise InputError(f"line {number} is not UTF-8", code="INVALID_JSON") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"line {number} is not JSON: {exc.msg}", code="INVALID_JSON") from exc
    if not isinstance(value, str):
        raise InputError(
            f"line {number} is JSON {type(value).__name__}, not a string", code="NOT_A_STRING"
        )
    return value


def _stdin_lines() -> Iterable[bytes]:
    return sys.stdin.buffer


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _fail(message: str) -> int:
    print(f"smsbroker segment: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from exc
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number
