"""Prints the optimum of a WCNF file (or UNSAT) with RC2, the core-guided
MaxSAT solver of python-sat: an independent cross-check of copperc's own
solver. Usage: rc2_cost.py FILE.wcnf"""
import sys

from pysat.examples.rc2 import RC2
from pysat.formula import WCNF

wcnf = WCNF(from_file=sys.argv[1])
with RC2(wcnf) as rc2:
    model = rc2.compute()
    print("UNSAT" if model is None else rc2.cost)
