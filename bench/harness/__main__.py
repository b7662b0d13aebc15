"""slabtrace's measurement harness: `python3 bench/harness COMMAND ...`.

  bench        the benchmark (throughput, BPF cost, serve's cost, map memory, scale)
  accuracy     the accuracy table, from the root tests' own runs
  leak-scale   one big leak: ROOM DATAGRAMS

scripts/bench.sh and scripts/accuracy.sh build first and call this. Python 3
from Debian only: no packages beyond the standard library."""

import argparse
import os
import sys

sys.dont_write_bytecode = True  # run as root from a source tree: leave no __pycache__ in it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import accuracy  # noqa: E402
import bench  # noqa: E402
import leak_scale  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser(prog="bench/harness", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    commands = {"bench": bench, "accuracy": accuracy, "leak-scale": leak_scale}
    for name, module in commands.items():
        sp = sub.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--build-dir", default=os.path.join(ROOT, "build"), help="where slabtrace and the tests were built")
        module.add_arguments(sp)
    args = p.parse_args()
    args.command_line = "bench/harness " + " ".join(sys.argv[1:])
    try:
        return commands[args.command].main(args, ROOT)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
