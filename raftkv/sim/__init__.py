"""Deterministic simulation of whole Raft clusters (see cluster.py)."""

from raftkv.sim.cluster import SimConfig, SimResult, Simulation, Violation, run_seed

__all__ = ["SimConfig", "SimResult", "Simulation", "Violation", "run_seed"]
