"""Model optimization simulation (MOS): short, batched optimizations of many candidate losses.

The second filter of CSE-Autoloss: candidates that passed the convergence checks are each
trained briefly from a cached warm start on a tiny verification set (one image per class) and
scored by COCO AP; divergent, exploding and poor candidates are rejected, the rest ranked.
Candidates are data for one compiled program (:mod:`simulate.interpreter`), never a recompile.
"""

from simulate.interpreter import ProgramTooLong, encode, run_program
from simulate.simulation import SimulationConfig, SimulationResult, Simulator, simulate_many

__all__ = [
    "ProgramTooLong",
    "SimulationConfig",
    "SimulationResult",
    "Simulator",
    "encode",
    "run_program",
    "simulate_many",
]
