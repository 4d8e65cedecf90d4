"""The test suite's fuzzers, run for minutes instead of seconds.

The same Hypothesis strategies as the suite (tests/test_fuzz_sessions.py,
tests/test_expressions_fuzz.py, tests/test_fuzz_cli.py), with no example limit and no
shrinking, for a given time:

- sessions: a valid session, one to three fields made hostile, then load, write back and
  reload, build, train one step, save and reload;
- expressions: a text from the grammar, mutated, then compile and one forward and backward;
- cli (only with --cli): gdviz's own command line, in this process, with hostile flags.

Prints how many inputs each tried and how many ended badly: an exception other than the
documented GdvizError family (a traceback a user would see), a broken property (a saved
session that reads back differently), or more than 1 s to refuse. The first few bad inputs
are shown.

    python benchmarks/fuzz.py --minutes 5 [--share 0.5] [--cli 0.0] [--seed N]
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import sys
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gdviz.core.errors import ExpressionError  # noqa: E402
from gdviz.core.expressions import compile_expression  # noqa: E402


class _TimeUp(BaseException):
    """Raised through Hypothesis (which lets BaseExceptions pass) when the time is spent."""


class Tally:
    def __init__(self, name: str):
        self.name = name
        self.tried = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.bad: list[tuple[str, str]] = []

    def record(self, outcome: str, data=None) -> None:
        self.tried += 1
        self.outcomes[outcome] += 1
        if outcome.startswith("BAD"):
            self.bad.append((outcome, repr(data)[:300]))

    def report(self) -> str:
        bad = sum(n for o, n in self.outcomes.items() if o.startswith("BAD"))
        lines = [f"{self.name}: {self.tried:,} tried, {bad:,} ended badly"]
        for outcome, n in self.outcomes.most_common():
            lines.append(f"  {n:>8,}  {outcome}")
        for outcome, data in self.bad[:5]:
            lines.append(f"  {outcome}\n      input: {data}")
        return "\n".join(lines)


def _fuzz(strategy, body, seconds: float, seed_value: int | None) -> None:
    """Run ``body(example)`` on examples of ``strategy`` for ``seconds``."""
    stop = time.monotonic() + seconds

    @settings(max_examples=10**9, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(strategy)
    def run(example):
        if time.monotonic() > stop:
            raise _TimeUp
        body(example)

    if seed_value is not None:
        run = seed(seed_value)(run)
    while time.monotonic() < stop:
        try:
            run()
        except _TimeUp:
            return


def _slow(outcome: str, again) -> str:
    """A refusal that took more than 1 s, timed once more: a machine busy with something
    else is not the refusal's fault (the tally shows such cases apart)."""
    start = time.perf_counter()
    try:
        again()
    except Exception:  # noqa: BLE001 - timing only; the first run classified it
        pass
    if time.perf_counter() - start > 1.0:
        return f"BAD: more than 1 s to be {outcome} (twice)"
    return f"{outcome} (once more than 1 s, then fast: the machine was busy)"


def _refuses(text: str, field: str, variables) -> None:
    try:
        compile_expression(text, field, variables=variables, reserved=("y", "loss"))
    except ExpressionError:
        pass


def fuzz_sessions(seconds: float, seed_value: int | None) -> Tally:
    from test_fuzz_sessions import check_session, mutated_sessions

    tally = Tally("sessions (mutate, load, build, one step, save, reload)")

    def body(data):
        start = time.perf_counter()
        try:
            outcome = check_session(data)
        except AssertionError as err:
            outcome = f"BAD: {err}"
        except Exception as err:  # noqa: BLE001 - the point is to catch anything
            outcome = f"BAD: {type(err).__name__}: {str(err)[:120]}"
        if time.perf_counter() - start > 1.0 and outcome.startswith("refused"):
            outcome = _slow(outcome, lambda: check_session(data))
        tally.record(outcome, data)

    _fuzz(mutated_sessions(), body, seconds, seed_value)
    return tally


def fuzz_expressions(seconds: float, seed_value: int | None) -> Tally:
    from test_expressions_fuzz import grammar_texts, mutated

    tally = Tally("expressions (generate, mutate, compile, one forward and backward)")

    def body(example):
        text, field = example
        variables = None if field == "function" else ["x", "w", "y"]
        start = time.perf_counter()
        try:
            expr = compile_expression(text, field, variables=variables, reserved=("y", "loss"))
        except ExpressionError:
            expr, outcome = None, "refused when compiled"
        except Exception as err:  # noqa: BLE001
            tally.record(f"BAD: {type(err).__name__}: {str(err)[:120]}", text)
            return
        if expr is None:
            if time.perf_counter() - start > 1.0:
                outcome = _slow(outcome, lambda: _refuses(text, field, variables))
            tally.record(outcome, text)
            return
        env = {n: torch.tensor([0.5, -1.5, 2.0]) for n in expr.names}
        try:
            expr.check(env, backward=True)
            outcome = "compiled and trained a step"
        except ExpressionError:
            outcome = "compiled, then refused by the forward/backward check"
        except Exception as err:  # noqa: BLE001
            outcome = f"BAD: {type(err).__name__}: {str(err)[:120]}"
        tally.record(outcome, text)

    _fuzz(st.tuples(mutated(grammar_texts), st.sampled_from(["function", "loss"])), body,
          seconds, seed_value)
    return tally


def fuzz_cli(seconds: float, seed_value: int | None) -> Tally:
    from test_fuzz_cli import argvs, check_argv

    tally = Tally("cli (gdviz run/race/grad/graph with hostile flags)")

    def body(argv):
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                outcome = check_argv(argv)
        except AssertionError as err:
            outcome = f"BAD: {err}"
        except Exception as err:  # noqa: BLE001
            outcome = f"BAD: {type(err).__name__}: {str(err)[:120]}"
        tally.record(outcome, argv)

    _fuzz(argvs(), body, seconds, seed_value)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="total time (default 1)")
    parser.add_argument("--share", type=float, default=0.5,
                        help="the sessions' share of the time; expressions get the rest")
    parser.add_argument("--cli", type=float, default=0.0,
                        help="the command line's share of the time (default 0)")
    parser.add_argument("--seed", type=int, help="Hypothesis seed, for a repeatable run")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the suite's warnings-as-errors is not the point here
    torch.set_num_threads(1)
    total = args.minutes * 60
    cli_s = total * args.cli
    sessions_s = (total - cli_s) * args.share
    expressions_s = total - cli_s - sessions_s
    tallies = []
    for name, fuzz, seconds in (("sessions", fuzz_sessions, sessions_s),
                                ("expressions", fuzz_expressions, expressions_s),
                                ("cli", fuzz_cli, cli_s)):
        if seconds <= 0:
            continue
        start = time.monotonic()
        tally = fuzz(seconds, args.seed)
        tallies.append(tally)
        print(tally.report(), flush=True)
        print(f"  ({time.monotonic() - start:.0f} s, "
              f"{tally.tried / max(time.monotonic() - start, 1e-9):.0f} inputs/s)\n", flush=True)
    bad = sum(n for t in tallies for o, n in t.outcomes.items() if o.startswith("BAD"))
    print(f"total: {sum(t.tried for t in tallies):,} inputs, {bad:,} ended badly")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
