"""The bench protocol's command line for the script benches (bench/README.md):
`--list | --run NAME [--reps N] [--quick]`, parsed once for all of them."""
import sys


def parse(argv, metrics, doc, prog):
    """(name, reps, quick) for a run, or the exit status when there is
    nothing to run (`--list` printed the metrics: 0; a usage error: 2)."""
    if "--list" in argv:
        print("\n".join(metrics))
        return 0
    if "--run" not in argv or argv.index("--run") + 1 >= len(argv):
        print(doc, file=sys.stderr)
        return 2
    name = argv[argv.index("--run") + 1]
    if name not in metrics:
        print(f"{prog}: unknown metric {name}", file=sys.stderr)
        return 2
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 5
    return name, reps, "--quick" in argv
