"""The constants that turn sRGB into CIELAB, as two named conventions.

Implementations of sRGB -> CIELAB disagree in the fourth significant digit because they use
different published constants; a benchmark has to say which one it uses.

``"cie"`` (the default; identical to colour-science 0.4)
    sRGB -> XYZ matrix of IEC 61966-2-1:1999 (four decimals), the D65 white point from its CIE
    chromaticity (x, y) = (0.3127, 0.3290), i.e. XYZ_n = (0.950456, 1, 1.089058), and the exact
    rational CIELAB constants of CIE 15:2004 (epsilon = 216/24389, kappa = 24389/27). The sRGB decode
    switches to the power segment above ``1.055 * 0.0031308**(1/2.4) - 0.055`` (= 0.040450 - 6e-8).

``"skimage"`` (identical to ``skimage.color.rgb2lab``)
    the six-decimal sRGB matrix and the ASTM E308 D65 white (0.95047, 1, 1.08883), with the rounded
    CIELAB constants 0.008856 and 7.787, decode threshold 0.04045.

With ``"cie"`` the sRGB white (1, 1, 1) maps to L* = 100, a* = 0.0077, b* = 0.0035: the IEC matrix
is rounded to four decimals while the white point is exact (colour-science does the same).
The two conventions give Lab values that differ by up to about 0.02 (in a*) and per-pixel CIEDE2000 values
that differ by about 1e-3; pick ``"skimage"`` to reproduce numbers computed with scikit-image.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdbench.errors import DataError


@dataclass(frozen=True)
class LabConvention:
    """One set of sRGB -> XYZ -> CIELAB constants (see the module docstring)."""

    name: str
    rgb_to_xyz: tuple[tuple[float, float, float], ...]
    white_xyz: tuple[float, float, float]
    lab_epsilon: float  # Y/Yn above which f(t) = t**(1/3)
    lab_slope: float  # f(t) = slope * t + 16/116 below epsilon
    decode_threshold: float  # sRGB values <= this are on the linear segment

    @property
    def lab_matrix(self) -> tuple[tuple[float, float, float], ...]:
        """The sRGB -> XYZ matrix with the white point folded in: linear RGB -> (X/Xn, Y/Yn, Z/Zn)."""
        return tuple(tuple(v / w for v in row) for row, w in zip(self.rgb_to_xyz, self.white_xyz))


_D65_XY = (0.3127, 0.3290)

CIE = LabConvention(
    name="cie",
    rgb_to_xyz=((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505)),
    white_xyz=(_D65_XY[0] / _D65_XY[1], 1.0, (1.0 - _D65_XY[0] - _D65_XY[1]) / _D65_XY[1]),
    lab_epsilon=216 / 24389,
    lab_slope=841 / 108,
    decode_threshold=1.055 * 0.0031308 ** (1 / 2.4) - 0.055,
)

SKIMAGE = LabConvention(
    name="skimage",
    rgb_to_xyz=((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227)),
    white_xyz=(0.95047, 1.0, 1.08883),
    lab_epsilon=0.008856,
    lab_slope=7.787,
    decode_threshold=0.04045,
)

CONVENTIONS: dict[str, LabConvention] = {c.name: c for c in (CIE, SKIMAGE)}


def get_convention(convention: str | LabConvention) -> LabConvention:
    """A :class:`LabConvention` by name (``"cie"``, ``"skimage"``) or passed through."""
    if isinstance(convention, LabConvention):
        return convention
    try:
        return CONVENTIONS[str(convention).lower()]
    except KeyError:
        raise DataError(f"unknown colour convention {convention!r}: use one of {', '.join(CONVENTIONS)}") from None
