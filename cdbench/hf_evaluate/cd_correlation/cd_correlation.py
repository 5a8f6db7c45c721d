"""Colour-difference correlation metrics as a Hugging Face ``evaluate`` metric: a thin wrapper over
:func:`cdbench.metrics.subset_metrics` (SRCC, KRCC, PLCC after a logistic fit, raw PLCC, RMSE, STRESS)."""

import datasets
import evaluate

from cdbench.metrics import subset_metrics

_CITATION = """\
@inproceedings{chen2023cdnet,
  title={Learning a Deep Color Difference Metric for Photographic Images},
  author={Chen, Haoyu and Wang, Zhihua and Yang, Yang and Sun, Qilin and Ma, Kede},
  booktitle={CVPR}, year={2023}
}
@article{wang2023spcd,
  title={Measuring Perceptual Color Differences of Smartphone Photographs},
  author={Wang, Zhihua and Xu, Keshuo and Ding, Yang and Yang, Qiuping and Ma, Kede and others},
  journal={IEEE TPAMI}, year={2023}
}
"""

_DESCRIPTION = """\
Agreement between a colour-difference measure and human scores as reported in CD papers: SRCC and
KRCC (scipy), PLCC and RMSE after a logistic mapping (fit="5pl": the five-parameter logistic of the
CD-Net evaluation code with its starting values; "4pl": pyiqa's; "none"), PLCC without the mapping
(plcc_raw) and STRESS (0..100). With `aligned`, the same for the aligned / not-aligned subsets; with
`scenes` and n_boot > 0, 95% bootstrap intervals resampling scenes.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): the measure's values (larger = more different).
    references (`list` of `float`): human colour-difference scores.
    fit (`str`): "5pl" (default), "4pl" or "none".
    aligned (`list` of `bool`, optional): per-pair alignment; adds "aligned" / "not_aligned" results.
    scenes (`list` of `str`, optional): per-pair scene ids for the bootstrap.
    n_boot (`int`): bootstrap resamples (default 0: no intervals). seed (`int`): bootstrap seed.
    scale (`str`): "difference" (default) or "level" (M-SPCD level values; STRESS on the score scale).
Returns:
    srcc, krcc, plcc, plcc_raw, rmse, stress (`float`), n (`int`), fit (`dict`: kind, params, converged),
    ci95 (`dict`), and "aligned" / "not_aligned" (`dict`) when `aligned` is given.
Examples:
    >>> corr = evaluate.load("cdbench/hf_evaluate/cd_correlation")
    >>> corr.compute(predictions=[1, 2, 3, 4], references=[1.5, 2.0, 3.7, 4.1], fit="none")["srcc"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CdCorrelation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
            reference_urls=["https://github.com/haoychen3/CD-Flow"],
        )

    def _compute(self, predictions, references, fit="5pl", aligned=None, scenes=None, n_boot=0, seed=0,
                 scale="difference"):
        flags = [True] * len(predictions) if aligned is None else [bool(a) for a in aligned]
        subsets = ("all",) if aligned is None else ("all", "aligned", "not_aligned")
        result = subset_metrics(predictions, references, flags, scenes, fit=fit, n_boot=n_boot, seed=seed,
                                scale=scale, subsets=subsets)
        out = dict(result["all"])
        for name in subsets[1:]:
            out[name] = result[name]
        return out
