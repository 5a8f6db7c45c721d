"""STRESS (Garcia et al. 2007) as a Hugging Face ``evaluate`` metric: a thin wrapper over
:func:`cdbench.metrics.stress` (0..100 scale, lower is better)."""

import datasets
import evaluate

from cdbench.metrics import stress, stress_predictions

_CITATION = """\
@article{garcia2007stress,
  title={Measurement of the relationship between perceived and computed color differences},
  author={Garc{\\'\\i}a, Pedro A. and Huertas, Rafael and Melgosa, Manuel and Cui, Guihua},
  journal={Journal of the Optical Society of America A}, volume={24}, number={7}, pages={1823--1829}, year={2007}
}
"""

_DESCRIPTION = """\
STRESS, the standardised residual sum of squares between computed colour differences (dE) and
perceived ones (dV): F1 = sum(dE^2) / sum(dE dV), STRESS = 100 sqrt(sum((dE - F1 dV)^2) / (F1^2 sum(dV^2))).
0..100, lower is better; invariant to a scale factor of the predictions. colour-science's
`index_stress` returns the same value as a fraction (divide by 100).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): computed colour differences (or M-SPCD level values with scale="level").
    references (`list` of `float`): human (perceived) colour differences.
    scale (`str`, optional): "difference" (default) or "level": level values (0..5) are mapped to the
        human score scale with the inverse M-SPCD level formula before STRESS.
Returns:
    stress (`float`): STRESS in 0..100 (NaN with a warning for degenerate input).
Examples:
    >>> stress = evaluate.load("cdbench/hf_evaluate/stress")
    >>> stress.compute(predictions=[1.0, 2.0, 3.0], references=[1.0, 2.0, 4.0])
    {'stress': 13.04...}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Stress(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
            reference_urls=["https://doi.org/10.1364/JOSAA.24.001823"],
        )

    def _compute(self, predictions, references, scale="difference"):
        return {"stress": float(stress(stress_predictions(predictions, scale), references))}
