"""The explicit limits of what gdviz accepts, in one place (files, flags and the window)."""

MAX_STEPS = 1_000_000_000        # a step limit or a step count
MAX_SEED = 2**63 - 1             # torch takes seeds in [0, 2**64); one rule for every input
MAX_RUNS = 1024                  # runs in a session
MAX_ELEMENTS = 10_000_000        # elements of one parameter (40 MB of float32)
MAX_TEXT = 10_000                # characters of a function or a loss
MAX_HISTORY_VALUES = 40_000_000  # numbers of a history stored in a session
