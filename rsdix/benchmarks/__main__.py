"""``python -m rsdix.benchmarks [--quick] [--only NAME] [--out PREFIX]`` = ``rsdix bench ...``."""
import sys

from rsdix.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
