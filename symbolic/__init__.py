"""The mathematics of loss candidates: operators, forms, candidates, parsing, printing, lowering.

No detector code lives here.
"""
