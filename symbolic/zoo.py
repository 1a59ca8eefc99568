"""The known-loss zoo: handcrafted baselines and the four published CSE-Autoloss losses.

The published losses are the authors' own prefix strings (CSE-Autoloss release, Liu et al.,
ICLR 2021), parsed by our grammar; their closed forms are in the paper (Sec. 4, Table 1):

* CSE-Autoloss-A (Faster R-CNN): cls −dot((1 + sin w)·y, log softmax(x)),
  reg (1 − i/u) + (1 − (i + 2)/e).
* CSE-Autoloss-B (FCOS): cls −[q(1 + erf_s(σ(1 − y))) log σ(x)
  + (gd_s(x) − q)(σ(x) − q) log(1 − σ(x))], reg
  (3eu + 12e + 3i + 3u + 18)/(−3eu + iu + u² − 15e + 5i + 5u).
"""

from __future__ import annotations

import dataclasses
import functools

from symbolic.candidate import Candidate


@dataclasses.dataclass(frozen=True)
class KnownLoss:
    """A named loss of the zoo: its form, formula text and where it comes from."""

    name: str
    form: str
    formula: str
    description: str
    source: str

    @property
    def candidate(self) -> Candidate:
        """The loss as a Candidate (parsed once, then cached)."""
        return _parse(self.formula, self.form)


@functools.cache
def _parse(formula: str, form: str) -> Candidate:
    return Candidate.parse(formula, form)


CSE_A_CLS = "Neg(Dot(Mul(Y,Add(1,Sin(Z))),Log(Softmax(X))))"
CSE_A_REG = "Add(1,Neg(Add(Div(I,U),Neg(Div(Add(E,Neg(Add(I,2))),E)))))"
CSE_B_CLS = (
    "Neg(Add(Mul(Q,Mul(Add(1,Serf(Sig(NY))),Log(Sig(X)))),Mul(Add(Sgdf(X),Neg(Q)),"
    "Mul(Add(Add(1,Neg(Q)),Neg(Add(1,Neg(Sig(X))))),Log(Add(1,Neg(Sig(X))))))))"
)
CSE_B_REG = (
    "Neg(Div(Add(Div(Neg(Add(Neg(E),Add(1,I))),Neg(Add(3,Add(2,U)))),Add(Div(E,E),Div(Neg(E),Neg(1)))),"
    "Neg(Add(Div(Neg(Add(U,Div(I,1))),Neg(3)),Neg(E)))))"
)

KNOWN_LOSSES: dict[str, KnownLoss] = {
    loss.name: loss
    for loss in [
        KnownLoss("ce", "softmax", "-dot(y, log(softmax(x)))",
                  "softmax cross-entropy", "standard; Faster R-CNN (Ren et al., 2015)"),
        KnownLoss("bce", "sigmoid", "-(y*log(sigmoid(x)) + (1 - y)*log(1 - sigmoid(x)))",
                  "binary cross-entropy on per-class sigmoids", "standard"),
        KnownLoss("focal", "sigmoid",
                  "-(0.25*y*(1 - sigmoid(x))**2*log(sigmoid(x))"
                  " + 0.75*(1 - y)*sigmoid(x)**2*log(1 - sigmoid(x)))",
                  "sigmoid focal loss, gamma 2, alpha 0.25", "Lin et al., 2017 (RetinaNet); FCOS default"),
        KnownLoss("iou", "reg", "1 - i/u", "IoU loss, 1 − IoU", "Yu et al., 2016 (UnitBox), linear form"),
        KnownLoss("giou", "reg", "1 - i/u + (e - u)/e", "generalized IoU loss", "Rezatofighi et al., 2019"),
        KnownLoss("cse_a_cls", "softmax", CSE_A_CLS, "CSE-Autoloss-A classification (Faster R-CNN)",
                  "Liu et al., ICLR 2021, released prefix string"),
        KnownLoss("cse_a_reg", "reg", CSE_A_REG, "CSE-Autoloss-A regression (Faster R-CNN)",
                  "Liu et al., ICLR 2021, released prefix string"),
        KnownLoss("cse_b_cls", "sigmoid", CSE_B_CLS, "CSE-Autoloss-B classification (FCOS)",
                  "Liu et al., ICLR 2021, released prefix string"),
        KnownLoss("cse_b_reg", "reg", CSE_B_REG, "CSE-Autoloss-B regression (FCOS)",
                  "Liu et al., ICLR 2021, released prefix string"),
    ]
}


def known_loss(name: str) -> KnownLoss:
    """The zoo entry called ``name``; a clear error listing the names otherwise."""
    try:
        return KNOWN_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; the zoo has {', '.join(KNOWN_LOSSES)}") from None
