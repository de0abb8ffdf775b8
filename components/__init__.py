"""Reusable UI pieces for WRaft apps (pyscript); they use raft's public API only."""
