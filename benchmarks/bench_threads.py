"""One vs two torch threads for the CPU bench table's rows, end to end (loader process included).

The bench preset gives every training process ``threads: 0`` = auto = the cores its loader
processes leave: one thread on a 2-core machine with one loader process, the setting that
does not thrash when other work shares the two cores. On a machine that is otherwise idle the
loader takes only part of the second core (docs/performance.md, section 3: the loader runs at
5-7x the model's clip rate), so a second intra-op thread may pay. This measures it: for each
row, short real runs through ``Trainer.fit`` on the row's own dataset and loader
(``pipeline_rates.fit_records``), alternating the thread counts in one process, ``--repeats``
times; it prints the median clips/s over the logged steps after the first ``--skip`` per
thread count and the ratio to the first count.

    python benchmarks/bench_threads.py [--rows simclr mtcl] [--threads 1 2] [--steps 60]
        [--repeats 2]

Run it with nothing else on the machine; under other load the ratio says how the threads
share the cores with that load, not what the rows would do alone.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from typing import Any

from pipeline_rates import cpu_row_config, fit_records
from vidssl.app.train.threads import torch_threads


def median_rate(records: list[dict[str, Any]], skip: int) -> float:
    rates = [r["clips_per_s"] for r in records if r.get("kind") == "step" and r["step"] > skip]
    if not rates:
        raise SystemExit(f"no step records after step {skip}: raise --steps")
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", nargs="+", default=["simclr", "mtcl"], help="CPU preset rows")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="counts to compare")
    p.add_argument("--steps", type=int, default=60, help="training steps per run")
    p.add_argument("--skip", type=int, default=10, help="first steps left out of the median")
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs per thread count")
    args = p.parse_args(argv)
    for row in args.rows:
        cfg = cpu_row_config(row)
        rates: dict[int, list[float]] = {n: [] for n in args.threads}
        for _ in range(args.repeats):
            for n in args.threads:
                run = replace(cfg, train=replace(cfg.train, threads=n))
                with torch_threads(n):
                    rates[n].append(median_rate(fit_records(run, None, args.steps), args.skip))
        base = statistics.median(rates[args.threads[0]])
        for n in args.threads:
            rate = statistics.median(rates[n])
            shown = ", ".join(f"{r:.1f}" for r in rates[n])
            print(
                f"{row:<8} {n} thread(s): {rate:7.1f} clips/s (runs: {shown})  "
                f"x{rate / base:.2f} vs {args.threads[0]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
