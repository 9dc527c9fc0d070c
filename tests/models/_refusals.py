"""Run ``earmark predict`` on many model files, each in a forked child of one warm process.

Started once by the crafted-file test: it imports the CLI (and scikit-learn, skops)
once, then forks a child per model file, so each case pays for its own work only. Each
child's stderr, exit code, wall time and peak resident memory (``os.wait4``) come back
as one JSON line per case. The child is what a user runs: ``earmark predict FILE CLIP``.

Usage: python _refusals.py CLIP OUT.json MODEL...
"""

import json
import os
import sys
import time

import sklearn.ensemble  # noqa: F401
import skops.io  # noqa: F401 - warm: the children should pay only for their own work

from earmark.cli import main


def _child(model: str, clip: str, stderr_path: str) -> None:
    descriptor = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(descriptor, 2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.argv = ["earmark", "predict", model, clip, "--json"]
    code = 0
    try:
        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # a traceback: print it as Python would, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)


def run(clip: str, out: str, models: list[str]) -> None:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    startup_cpu_s = own.ru_utime + own.ru_stime  # imports, paid once here, once per real run
    results = []
    for index, model in enumerate(models):
        stderr_path = f"{out}.{index}.stderr"
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child(model, clip, stderr_path)
        _, status, usage = os.wait4(pid, 0)
        results.append({
            "model": model,
            "returncode": os.waitstatus_to_exitcode(status),
            "seconds": time.perf_counter() - started,
            # CPU time, not wall time, is what a crafted file costs: a loaded machine
            # stretches the wall clock, a hang or a bomb shows in both.
            "cpu_s": usage.ru_utime + usage.ru_stime + startup_cpu_s,
            "rss_mib": usage.ru_maxrss / 1024,
            "stderr": open(stderr_path).read(),
        })
    with open(out, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], sys.argv[3:])
