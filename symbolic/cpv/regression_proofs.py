"""Proofs of distance-loss consistency, in the coordinates every IoU-style loss is written in.

The principle (one for every regression loss; the requirement of Liu et al., ICLR 2021,
Sec. 3 "convergence property verification": the regression loss must not fall as the
predicted box moves away from the ground truth, at every scale). A move away does not raise
the overlap i or the IoU v = i/u, and lets the union u and the enclosing box e grow (or
stay) with the union's share of the enclosing box, u/e, not rising — every translation,
scaling and aspect change of the probe is such a move. Two sets of directions each span a
cone that holds all these moves, so either set of sign conditions shows the loss never
falls under any move away, at any point and scale:

* in (v, u, e) — the IoU falls at fixed u and e; the enclosing box grows at fixed v and u;
  union and enclosing box grow together at fixed v and u/e (the coordinates of IoU-style
  losses):  ∂L/∂v ≤ 0,  ∂L/∂e ≥ 0,  u·∂L/∂u + e·∂L/∂e ≥ 0  (L written in v, u, e);
* in (i, u, e) — the overlap falls, the union grows, the enclosing box grows, each alone
  (the coordinates of losses written in raw areas):  ∂L/∂i ≤ 0,  ∂L/∂u ≥ 0,  ∂L/∂e ≥ 0.

``prove_consistency`` writes the loss as L(v·u, u, e) — the published losses are functions
of the IoU and the enclosing-area ratio, and the substitution removes the cancellation that
defeats bounds in i, u, e near IoU 0 — differentiates, and decides the three signs over
v ∈ [0, 1], u/e ∈ [0, 1] and every area e ∈ (0, ∞) (SymPy's assumptions, else interval
branch and bound with e bisected on a compactified log scale). The domain is a superset of
the boxes that exist, so a sign that fails there decides nothing: the proof falls back to
the probe's own path families (``prove_on_paths``), where a wrong sign is a counterexample.
A formula that is infinite at IoU 0 (``u/i``) is covered where it is finite; as ∂L/∂v ≤ 0
makes it grow towards IoU 0, its value there is +∞, and the guarded numerics' finite value
is left to the sampled check.

Not flat: the loss must also rise over each path from the perfect match to its end (IoU 0
for translations): the rise L(end) − L(start) > 0 is bounded on the path families for every
box area (the value at disjoint boxes is the numerics' guarded one, ``substitution``).

Strictness once disjoint (not required): where the boxes no longer overlap, IoU terms are
constant, and only a loss that keeps growing in e pulls the boxes together (GIoU's argument,
Rezatofighi et al., CVPR 2019). The paper does not ask for it — the IoU loss is flat there
and is a valid regression loss — so it is reported for every loss, not required of any.
"""

from __future__ import annotations

import math

import sympy

from symbolic.cpv.grids import BOX_ASPECTS, BOX_SIDES
from symbolic.cpv.proof_worker import ProofTimeout, clock, time_limit
from symbolic.cpv.sign_proofs import assumption_sign, prove_sign
from symbolic.cpv.substitution import substitute
from symbolic.cpv.verdict import Proof, describe_range
from symbolic.forms import e, i, u

v = sympy.Symbol("v", nonnegative=True)  # the IoU i/u
r = sympy.Symbol("r", nonnegative=True)  # the union's share of the enclosing box u/e
E = sympy.Symbol("E", positive=True)  # the enclosing box's area, as a box variable
t = sympy.Symbol("t", positive=True)  # a path's parameter
A = sympy.Symbol("A", positive=True)  # the ground-truth box's area
AREA_RANGE = (min(BOX_SIDES) ** 2 * min(BOX_ASPECTS), max(BOX_SIDES) ** 2 * max(BOX_ASPECTS))  # the probe's
AREAS_SHARE = 0.25  # of the time left, at most this much goes to the directions in (i, u, e) before the paths
GAP_END = 4.0  # translations run to offset 4 box sizes (a gap of 3)
INF = math.inf


def cone_conditions(expr: sympy.Expr, coordinates: str = "iou") -> list[tuple[str, sympy.Expr, str]]:
    """(what, expression in v, r, E, sign it must have) for the three directions of a move away.

    ``coordinates``: "iou" for the directions in (v, u, e), "areas" for those in (i, u, e).
    """
    if coordinates == "iou":
        written = expr.xreplace({i: v * u})
        conditions = [("the IoU falls", sympy.diff(written, v), "nonpositive"),
                      ("the enclosing box grows", sympy.diff(written, e), "nonnegative"),
                      ("union and enclosing box grow together",
                       u * sympy.diff(written, u) + e * sympy.diff(written, e), "nonnegative")]
    else:
        conditions = [("the overlap falls", sympy.diff(expr, i), "nonpositive"),
                      ("the union grows", sympy.diff(expr, u), "nonnegative"),
                      ("the enclosing box grows", sympy.diff(expr, e), "nonnegative")]
    at = {i: v * r * E, u: r * E, e: E}
    return [(what, sympy.expand_power_base(condition.xreplace(at)), sign) for what, condition, sign in conditions]


def _prove_directions(expr: sympy.Expr, coordinates: str, deadline: float) -> Proof:
    box = {v: (0.0, 1.0), r: (0.0, 1.0), E: (0.0, INF)}
    arguments = []
    for what, condition, sign in cone_conditions(expr, coordinates):
        if clock() > deadline:
            return Proof.undecided("before every direction was decided", timed_out=True)
        if condition == 0 or assumption_sign(condition, sign):
            arguments.append("SymPy assumptions")
            continue
        proof = prove_sign(condition, box, sign, deadline=deadline, log_scale=(E,))
        if proof.status != "proved":
            why = "wrong sign somewhere in the relaxed domain" if proof.status == "refuted" else proof.detail
            return Proof.undecided(f"as {what}: {why}", timed_out=proof.timed_out)
        arguments.append(proof.argument)
    names = "(v, u, e)" if coordinates == "iou" else "(i, u, e)"
    return Proof("proved", f"sign of dL along the three directions of a move away in {names} ("
                 + "; ".join(arguments) + ")",
                 "every IoU in [0, 1], enclosing ratio u/e in [0, 1] and area e > 0")


def prove_cone(expr: sympy.Expr, deadline: float) -> Proof:
    """The three sign conditions in (v, u, e), else in (i, u, e), over every IoU, enclosing ratio and area."""
    in_iou = _prove_directions(expr, "iou", deadline)
    if in_iou.status == "proved" or in_iou.timed_out:
        return in_iou
    share = clock() + AREAS_SHARE * max(0.0, deadline - clock())
    in_areas = _prove_directions(expr, "areas", share)
    if in_areas.status == "proved":
        return in_areas
    return Proof.undecided(f"{in_iou.detail}; in (i, u, e): {in_areas.detail}")


def path_families():
    """(name, {i, u, e as functions of t, A}, t range, +1 if moving away means t grows else -1, disjoint)."""
    overlap_axis, overlap_diagonal = A * (1 - t), A * (1 - t) ** 2
    return [
        ("translation along an axis, overlapping", {i: overlap_axis, u: 2 * A - overlap_axis, e: A * (1 + t)},
         (0.0, 1.0), 1, False),
        ("translation along an axis, disjoint", {i: 0, u: 2 * A, e: A * (1 + t)}, (1.0, GAP_END), 1, True),
        ("diagonal translation, overlapping", {i: overlap_diagonal, u: 2 * A - overlap_diagonal,
                                               e: A * (1 + t) ** 2}, (0.0, 1.0), 1, False),
        ("diagonal translation, disjoint", {i: 0, u: 2 * A, e: A * (1 + t) ** 2}, (1.0, GAP_END), 1, True),
        ("scale up", {i: A, u: A * t**2, e: A * t**2}, (1.0, 10.0), 1, False),
        ("scale down", {i: A * t**2, u: A, e: A}, (0.01, 1.0), -1, False),
        ("aspect change", {i: A / t, u: 2 * A - A / t, e: A * t}, (1.0, 10.0), 1, False),
    ]


def on_path(expr: sympy.Expr, point: dict) -> sympy.Expr:
    """``expr`` at (i, u, e) = ``point`` (numbers or expressions in t, A), zero areas taking the guarded value."""
    point = {symbol: sympy.sympify(value) for symbol, value in point.items()}
    numbers = {symbol: value for symbol, value in point.items() if value.is_number}
    return substitute(expr, numbers).xreplace({s: value for s, value in point.items() if s not in numbers})


def _rise(expr: sympy.Expr, substitution: dict, start: float, end: float, deadline: float) -> Proof:
    """Whether L(end) − L(start) > 0 on one path family, for every area A."""
    rise = on_path(expr, {k: p.subs(t, end) for k, p in substitution.items()}) - on_path(
        expr, {k: p.subs(t, start) for k, p in substitution.items()})
    return prove_sign(rise, {A: (0.0, INF)}, "positive", deadline=deadline, log_scale=(A,), required={A: AREA_RANGE})


def prove_rise(expr: sympy.Expr, deadline: float) -> Proof:
    """The loss rises from the perfect match to the end of every non-disjoint path family, for all areas.

    Called once the loss is proved never to fall along a move away, so a rise to a point inside
    the path is a rise to its end: L(end) ≥ L(inside) > L(start). That point (half way) is used
    where the end's bound is undecided, as it is for losses that grow without bound towards IoU 0
    (``exp(e/i)``), whose value at the end is the numerics' guarded one.
    """
    arguments = set()
    for name, substitution, (t_lo, t_hi), direction, disjoint in path_families():
        if disjoint:
            continue
        start, end = (t_lo, t_hi) if direction > 0 else (t_hi, t_lo)
        proof = _rise(expr, substitution, start, end, deadline)
        if proof.status == "refuted":
            return Proof("refuted", proof.argument, "", f"{name}: the loss does not rise from IoU 1 to the path's "
                         "end", {**(proof.counterexample or {}), "path": name})
        if proof.status != "proved" and not proof.timed_out:
            inside = _rise(expr, substitution, start, (start + end) / 2, deadline)
            if inside.status == "proved":
                arguments.add("half way along a path where the end is undecided")
                continue
        if proof.status != "proved":
            return Proof.undecided(f"{name}: rise from IoU 1 undecided ({proof.detail})", timed_out=proof.timed_out)
    return Proof("proved", "interval bounds on L(end) - L(start) of every path family"
                 + "".join(f" ({argument})" for argument in sorted(arguments)), "")


def prove_on_paths(expr: sympy.Expr, deadline: float) -> Proof:
    """Non-decrease along every probe path family, for all t on the path and every area A (the fallback)."""
    arguments, every_scale = set(), True
    for name, substitution, (t_lo, t_hi), direction, _ in path_families():
        if clock() > deadline:
            return Proof.undecided(f"before the path family {name}", timed_out=True)
        slope = direction * sympy.diff(on_path(expr, substitution), t)
        box = {t: (t_lo, t_hi), A: (0.0, INF)}
        proof = prove_sign(slope, box, "nonnegative", deadline=deadline, log_scale=(A,), required={A: AREA_RANGE})
        if proof.status == "refuted":
            point = dict(proof.counterexample or {})
            point.update({k.name: float(value.subs({t: point["t"], A: point["A"]}))
                          for k, value in substitution.items()})
            return Proof("refuted", proof.argument, "", f"{name}: the loss decreases as the box moves away "
                         "(rigorous bound on dL/dt)", point)
        if proof.status != "proved":
            return Proof.undecided(f"{name}: {proof.detail}", timed_out=proof.timed_out)
        arguments.add(proof.argument.split(" (")[0])
        every_scale &= proof.domain.endswith(describe_range("A", *box[A]))
    scales = "every box area A > 0" if every_scale else \
        f"box areas A in [{AREA_RANGE[0]:.3g}, {AREA_RANGE[1]:.3g}] (the probe's scales)"
    return Proof("proved", "sign of dL/dt on every path family of the probe (" + ", ".join(sorted(arguments)) + ")",
                 f"translations, scalings and aspect changes, {scales}")


def prove_consistency(expr: sympy.Expr, deadline: float) -> Proof:
    """Distance-loss consistency of a regression formula: never falls (cone, else paths) and rises on every path."""
    try:
        with time_limit(deadline):
            never_falls = prove_cone(expr, deadline)
            if never_falls.status != "proved":
                on_paths = prove_on_paths(expr, deadline)
                if on_paths.status == "undecided":
                    return Proof.undecided(f"{never_falls.detail}; on the probe's paths: {on_paths.detail}",
                                           timed_out=never_falls.timed_out or on_paths.timed_out)
                never_falls = on_paths
            if never_falls.status == "refuted":
                return never_falls
            rise = prove_rise(expr, deadline)
    except ProofTimeout:
        return Proof.undecided("", timed_out=True)
    if rise.status != "proved":
        return rise
    return Proof("proved", f"{never_falls.argument}; the rise over every path: {rise.argument}",
                 never_falls.domain, "never falls as the box moves away, and rises from IoU 1 to the end of every "
                 "path")
