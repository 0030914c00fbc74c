"""How long the offline model takes to read a message and decide its first step.

    uv run python -m bench.offline

Runs every phrasing of the model's test table (tests/test_offline_phrasings.py) through
`decide`, the whole per-message work of the model apart from the tools, and prints the median
and the slowest message in microseconds.
"""

from __future__ import annotations

import statistics
import time

from tests.test_offline_phrasings import CASES, NEGATIVE, SEED
from todo_agent.offline import Turn, decide


def main() -> None:
    messages = []
    for say, _ in CASES + NEGATIVE:
        for message in (say,) if isinstance(say, str) else say:
            messages.append(message.format(**dict.fromkeys(SEED, 7)))
    history = [("user", "delete the call task"), ("assistant", "Which one do you mean?")]
    for message in messages:  # warm up caches and the regex engine
        decide(Turn(message, [], history))
    timings = []
    for message in messages:
        best = min(_time(message, history) for _ in range(20))
        timings.append((best, message))
    timings.sort()
    median = statistics.median(t for t, _ in timings)
    slowest, message = timings[-1]
    print(
        f"{len(messages)} messages: median {median * 1e6:.0f} µs, "
        f"slowest {slowest * 1e6:.0f} µs ({message!r})"
    )


def _time(message: str, history: list[tuple[str, str]]) -> float:
    start = time.perf_counter()
    decide(Turn(message, [], history))
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
