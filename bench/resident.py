"""Prints the peak and the current resident memory, in kB, of a process and all its children
(VmHWM and VmRSS summed over the process tree): what the bench scripts report as memory.

    python3 bench/resident.py PID
"""

import os
import sys


def tree(pid):
    yield pid
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            for child in open(f"/proc/{pid}/task/{task}/children").read().split():
                yield from tree(int(child))
        except OSError:
            pass


def main():
    peak = current = 0
    for pid in set(tree(int(sys.argv[1]))):
        fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
        peak += int(fields["VmHWM"].split()[0])
        current += int(fields["VmRSS"].split()[0])
    print(peak, current)


if __name__ == "__main__":
    main()
