"""Shared test set-up: CPU, and a persistent compilation cache for the session.

Many tests train tiny models whose jitted step compiles to the same program; the persistent
cache (keyed by the program, not the Python function) compiles each one once.
"""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Bitwise-reproducible GPU runs (the engine's resume and seed tests compare exactly): without
# this, XLA's GPU scatter-adds sum in whatever order their atomics land. No effect on CPU.
if "--xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true"
    ).strip()

# Two CPU devices, as the nstm command makes on two cores: fit() then splits each step's
# measurements across them, so the suite runs the data-parallel engine the command runs.
if "--xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update(
    "jax_compilation_cache_dir",
    os.environ.get(
        "NSTM_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "nstm-test-jax-cache")
    ),
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
