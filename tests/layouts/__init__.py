"""Layouts that exist only for the tests: a third form that no code knows by name."""

from pathlib import Path

THIRD = Path(__file__).resolve().parent / "test_slip_v3.yaml"
