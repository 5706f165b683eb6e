"""``python -m rsdix COMMAND`` = ``rsdix COMMAND`` (also under ``accelerate launch -m rsdix train``)."""
import sys

from rsdix.cli import main

if __name__ == "__main__":
    sys.exit(main())
