"""Extra interpreter start-up time of the package's start-up hook (nnunet_polydice.pth).

    python benchmarks/startup_time.py [--repeats 40]

Prints the hook's own import time as Python's `-X importtime` reports it (median over repeats), and the
median wall time of `python -c pass` with the hook active and switched off (NNUNET_POLYDICE_NO_HOOK=1:
the .pth line still runs, the hook returns at once). The first number is the cost; the wall times
show it is lost in the noise of starting Python.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def importtime_us(env) -> int:
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=env, capture_output=True,
                         text=True).stderr
    for line in err.splitlines():
        if line.rstrip().endswith("_nnunet_polydice_hook"):
            return int(line.split("|")[1])  # cumulative microseconds
    raise SystemExit("the start-up hook is not installed in this interpreter (pip install the package first)")


def wall_ms(env) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return 1000 * (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    on = {k: v for k, v in os.environ.items() if k != "NNUNET_POLYDICE_NO_HOOK"}
    off = {**on, "NNUNET_POLYDICE_NO_HOOK": "1"}
    hook = statistics.median(importtime_us(on) for _ in range(args.repeats))
    walls_on, walls_off = [], []
    for _ in range(args.repeats):  # interleaved, so drifts hit both alike
        walls_on.append(wall_ms(on))
        walls_off.append(wall_ms(off))
    print(f"hook import (cumulative, -X importtime): median {hook:.0f} us over {args.repeats} starts")
    print(f"python -c pass: median {statistics.median(walls_on):.1f} ms with the hook, "
          f"{statistics.median(walls_off):.1f} ms with NNUNET_POLYDICE_NO_HOOK=1")


if __name__ == "__main__":
    main()
