"""Started by labmind in place of a run's command: join the run's cgroups, set its rlimits, exec the command.

Run as `python -I -S launch.py [--cgroup-procs=FILE]... [--rlimit=NAME:VALUE]... -- COMMAND...`, so it
needs nothing but the standard library. Doing this in a separate process before exec (rather than in a
`preexec_fn`) is safe in labmind's multi-threaded process, and the command and everything it starts
inherit the cgroups and limits.
"""

import os
import resource
import signal
import sys


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("labmind launch: usage: launch.py [options] -- COMMAND...")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    for option in options:
        key, _, value = option.partition("=")
        try:
            if key == "--cgroup-procs":
                with open(value, "w") as f:
                    f.write(str(os.getpid()))
            elif key == "--rlimit":
                name, _, number = value.partition(":")
                limit = int(number)
                resource.setrlimit(getattr(resource, "RLIMIT_" + name), (limit, limit))
            else:
                sys.exit(f"labmind launch: unknown option {option}")
        except (OSError, ValueError, AttributeError) as exc:
            sys.exit(f"labmind: could not apply the run's limit {option}: {exc}")
    # Python ignores SIGPIPE and SIGXFSZ and exec keeps ignored signals: give the command the defaults, so a
    # file over the limit stops it (SIGXFSZ) as it would any program.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
