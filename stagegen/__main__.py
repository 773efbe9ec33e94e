"""`python -m stagegen` (torchrun uses this: torchrun --nproc-per-node 2 -m stagegen train ...)."""

from .cli import main

main()
