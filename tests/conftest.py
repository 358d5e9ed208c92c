import os

# Tests run on the CPU, deterministically, whatever accelerator the machine has.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("PHYSML_SCALE", "quick")
os.environ.setdefault("MPLBACKEND", "agg")
