"""`smsbroker segment`: in-process through main(), and one real subprocess run of --jsonl."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["segment", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_json_gsm7(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--json", "Hello €"], capsys)
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    assert json.loads(out) == {
        "encoding": "GSM7",
        "segments": 1,
        "parts": ["Hello €"],
        "part_units": [8],
    }


def test_json_ucs2_is_not_ascii_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--json", "ç" * 71], capsys)
    assert code == 0
    assert "ç" in out and "\\u00e7" not in out
    assert json.loads(out)["part_units"] == [67, 4]


def test_udh16_changes_the_part_size(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["--udh16", "--json", "a" * 161], capsys)
    assert json.loads(out)["part_units"] == [152, 9]


def test_readable_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["a" * 152 + "{bbbbbbbb\n"], capsys)
    assert code == 0
    assert out.splitlines() == [
        "encoding: GSM7",
        "segments: 2",
        f'part 1: 152 septets: "{"a" * 152}"',
        'part 2: 11 septets: "{bbbbbbbb\\n"',  # control characters shown escaped
    ]
    _, out, _ = run(["😀"], capsys)
    assert "encoding: UCS2" in out and "part 1: 2 UTF-16 units" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--json", ""], "EMPTY_BODY"),
        (["--max-chars", "3", "abcd"], "BODY_TOO_LONG"),
        ([], "give the TEXT"),
        (["--jsonl", "abc"], "do not also give TEXT"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "")
    assert message in err


@pytest.mark.parametrize("argv", [["--max-chars", "0", "x"], ["--max-chars", "x", "y"]])
def test_bad_option_values_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["segment", *argv])
    assert exc.value.code == 2
    assert "--max-chars" in capsys.readouterr().err


def test_jsonl_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_stdin(monkeypatch, '"hi"\n"ç"\n'.encode())
    code, out, err = run(["--jsonl"], capsys)
    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["encoding"] for row in rows] == ["GSM7", "UCS2"]


def test_jsonl_reports_each_bad_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ['"ok"', "42", '""', "not json", '"abcd"', "", '"\\ud800"', '"fin"']
    feed_stdin(monkeypatch, ("\n".join(lines) + "\n").encode() + b"\xff\n")
    code, out, _ = run(["--jsonl", "--max-chars", "3"], capsys)
    assert code == 2
    rows = [json.loads(line) for line in out.splitlines()]
    codes = [row["error"]["code"] if "error" in row else row["encoding"] for row in rows]
    assert codes == [
        "GSM7",
        "NOT_A_STRING",
        "EMPTY_BODY",
        "INVALID_JSON",
        "BODY_TOO_LONG",
        "INVALID_JSON",  # an empty line is not a JSON string either
        "INVALID_CHARACTER",  # unpaired surrogate
        "GSM7",  # lines after a failure are still answered
        "INVALID_JSON",  # not UTF-8
    ]
    assert all(row["error"]["message"] for row in rows if "error" in row)


def test_jsonl_subprocess() -> None:
    """The installed console script, reading a real pipe."""
    script = Path(sys.executable).with_name("smsbroker")
    texts = ["Hello", "a" * 161, "ç😀", "{" * 81]
    result = subprocess.run(
        [str(script), "segment", "--jsonl"],
        input="".join(json.dumps(t) + "\n" for t in texts).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert [(r["encoding"], r["segments"], r["part_units"]) for r in rows] == [
        ("GSM7", 1, [5]),
        ("GSM7", 2, [153, 8]),
        ("UCS2", 1, [3]),
        ("GSM7", 2, [152, 10]),
    ]
    assert ["".join(r["parts"]) for r in rows] == texts
