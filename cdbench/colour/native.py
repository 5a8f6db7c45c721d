"""The native CPU kernel of the fused CIEDE2000 path: C compiled at first use, loaded with ctypes.

Four functions: the fused uint8 pair -> CIEDE2000 map, uint8 image -> planar CIELAB, planar
CIELAB pair -> CIEDE2000 map (for images reused by several pairs: SPCD uses each about four
times), and planar CIELAB pair -> CIE76 / CIE94 / CMC map.
The C source below is the twin of :func:`cdbench.colour.fused.ciede2000_planes` (same algebra:
LUT decode, white-folded matrix, cube root as exp(log/3), unit hue vectors, no branches). It is
compiled once per machine with the system C compiler (``$CC``, else ``cc``/``gcc``) using
``-O3 -ffast-math -march=native -fopenmp``, so that expf/logf/atan2f/sinf vectorise through glibc's
libmvec (16 pixels per instruction with AVX-512) and OpenMP spreads blocks of 1024 pixels over
``torch.get_num_threads()`` threads with dynamic scheduling (robust on a shared, loaded machine).
The shared library is cached in ``$CDBENCH_CACHE_DIR`` (default ``~/.cache/cdbench``) under a hash
of the source, flags, compiler and CPU; it is written atomically.

Where no compiler is available or the build fails, :func:`load_kernel` returns None (with one
warning) and the caller uses the torch path. ctypes releases the GIL during the call, so image
decoding threads keep running. Its output is checked against the float64 reference in the tests
(<= 1e-3 per pixel on real photos).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from cdbench.colour.conventions import LabConvention, get_convention
from cdbench.colour.srgb import srgb_lut

KERNEL_SOURCE = r"""/* Fused uint8 sRGB pair -> CIELAB -> CIEDE2000 map (float32), the C twin of
 * cdbench.colour.fused.ciede2000_planes: same algebra (unit hue vectors, no branches), compiled
 * at first use with -O3 -ffast-math so that expf/logf/atan2f/sinf vectorise through glibc's libmvec.
 * References: CIE 15:2004 (CIELAB); Sharma, Wu & Dalal (2005) eq. (1)-(22) (CIEDE2000). */
#include <math.h>
#include <stdint.h>

#define BLOCK 1024
#define INLINE static inline __attribute__((always_inline))

INLINE float lab_f(float t, float eps, float slope) {
    float c = expf(logf(fmaxf(t, 1e-30f)) * (1.0f / 3.0f));
    return t > eps ? c : slope * t + (16.0f / 116.0f);
}

INLINE void lab_u8(const uint8_t *restrict px, const float *restrict lut, const float *restrict m, float eps,
                   float slope, float *L, float *a, float *b) {
    const float r = lut[px[0]], g = lut[px[1]], bl = lut[px[2]];
    const float fx = lab_f(m[0] * r + m[1] * g + m[2] * bl, eps, slope);
    const float fy = lab_f(m[3] * r + m[4] * g + m[5] * bl, eps, slope);
    const float fz = lab_f(m[6] * r + m[7] * g + m[8] * bl, eps, slope);
    *L = 116.0f * fy - 16.0f;
    *a = 500.0f * (fx - fy);
    *b = 200.0f * (fy - fz);
}

INLINE float de2000(float L1, float a1, float b1, float L2, float a2, float b2, float kL, float kC, float kH) {
    const float RAD = 0.017453292519943295f, DEG = 57.29577951308232f;
    const float P7 = 6103515625.0f; /* 25^7 */
    const float C30 = 0.8660254037844387f, S30 = 0.5f;
    const float C6 = 0.9945218953682733f, S6 = 0.10452846326765347f;
    const float C63 = 0.45399049973954675f, S63 = 0.8910065241883679f;
    const float Cb = 0.5f * (sqrtf(a1 * a1 + b1 * b1) + sqrtf(a2 * a2 + b2 * b2));
    const float Cb2 = Cb * Cb, Cb7 = Cb2 * Cb2 * Cb2 * Cb;
    const float g1 = 1.5f - 0.5f * sqrtf(Cb7 / (Cb7 + P7));
    const float ap1 = g1 * a1, ap2 = g1 * a2;
    const float Cp1 = sqrtf(ap1 * ap1 + b1 * b1), Cp2 = sqrtf(ap2 * ap2 + b2 * b2);
    const float inv1 = Cp1 > 0.0f ? 1.0f / fmaxf(Cp1, 1e-30f) : 0.0f;
    const float inv2 = Cp2 > 0.0f ? 1.0f / fmaxf(Cp2, 1e-30f) : 0.0f;
    const float u1x = ap1 * inv1, u1y = b1 * inv1, u2x = ap2 * inv2, u2y = b2 * inv2;
    const float dx = u2x - u1x, dy = u2y - u1y;
    float cross = u1x * u2y - u1y * u2x;
    /* bisector: u1 + u2 within 90 degrees, else sign(cross) rot90(u1 - u2); exactly
       opposite hues: the reference's case of eq. (10) and (14) */
    const float vx = u1x + u2x, vy = u1y + u2y;
    const float sum2 = vx * vx + vy * vy, dif2 = dx * dx + dy * dy;
    const float low = (b1 > 0.0f || (b1 == 0.0f && ap1 > 0.0f)) ? 1.0f : -1.0f;
    const float ukx = low > 0.0f ? u1x : u2x, uky = low > 0.0f ? u1y : u2y;
    const float sgn = cross > 0.0f ? 1.0f : (cross < 0.0f ? -1.0f : 0.0f);
    /* exactly opposite: cross == 0, both chromatic, not the sum branch (float flags keep
       the loop vectorisable) */
    const float opp = (cross == 0.0f && Cp1 * Cp2 > 0.0f && sum2 < dif2) ? 1.0f : 0.0f;
    const float wx = sum2 >= dif2 ? vx : (opp > 0.0f ? -uky : sgn * dy);
    const float wy = sum2 >= dif2 ? vy : (opp > 0.0f ? ukx : -sgn * dx);
    cross = opp > 0.0f ? low : cross;
    const float dHabs = sqrtf(Cp1 * Cp2 * (dx * dx + dy * dy));
    const float dH = cross < 0.0f ? -dHabs : dHabs;
    const float nrm2 = wx * wx + wy * wy;
    const float inv = nrm2 > 0.0f ? 1.0f / sqrtf(fmaxf(nrm2, 1e-30f)) : 0.0f;
    const float c = nrm2 > 0.0f ? wx * inv : 1.0f, s = wy * inv;
    const float c2 = c * c - s * s, s2 = 2.0f * c * s;
    const float c3 = c * c2 - s * s2, s3 = s * c2 + c * s2;
    const float c4 = c2 * c2 - s2 * s2, s4 = 2.0f * s2 * c2;
    const float T = 1.0f - 0.17f * (c * C30 + s * S30) + 0.24f * c2 + 0.32f * (c3 * C6 - s3 * S6)
                    - 0.20f * (c4 * C63 + s4 * S63);
    float h = atan2f(s, c) * DEG;
    h = h < 0.0f ? h + 360.0f : h;
    const float hd = (h - 275.0f) * (1.0f / 25.0f);
    const float dtheta = 30.0f * expf(-hd * hd);
    const float Cbp = 0.5f * (Cp1 + Cp2), Cbp2 = Cbp * Cbp, Cbp7 = Cbp2 * Cbp2 * Cbp2 * Cbp;
    const float RT = -2.0f * sqrtf(Cbp7 / (Cbp7 + P7)) * sinf(dtheta * (2.0f * RAD));
    const float Lb = 0.5f * (L1 + L2) - 50.0f, Lb2 = Lb * Lb;
    const float SL = 1.0f + 0.015f * Lb2 / sqrtf(20.0f + Lb2);
    const float SC = 1.0f + 0.045f * Cbp, SH = 1.0f + 0.015f * Cbp * T;
    const float lt = (L2 - L1) / (kL * SL), ct = (Cp2 - Cp1) / (kC * SC), ht = dH / (kH * SH);
    return sqrtf(fmaxf(lt * lt + ct * ct + ht * ht + RT * ct * ht, 0.0f));
}

/* uint8 sRGB pair -> CIEDE2000 map */
void cdb_ciede2000_u8(const uint8_t *restrict x1, const uint8_t *restrict x2, int64_t n,
                      const float *restrict lut, const float *restrict m, float eps, float slope,
                      float kL, float kC, float kH, float *restrict out, int nthreads) {
    const int64_t nblocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nthreads)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t i0 = blk * BLOCK, i1 = (i0 + BLOCK < n) ? i0 + BLOCK : n;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) {
            float L1, a1, b1, L2, a2, b2;
            lab_u8(x1 + 3 * i, lut, m, eps, slope, &L1, &a1, &b1);
            lab_u8(x2 + 3 * i, lut, m, eps, slope, &L2, &a2, &b2);
            out[i] = de2000(L1, a1, b1, L2, a2, b2, kL, kC, kH);
        }
    }
}

/* uint8 sRGB image -> planar CIELAB (L plane, a plane, b plane), for images reused by several pairs */
void cdb_lab_u8(const uint8_t *restrict x, int64_t n, const float *restrict lut, const float *restrict m,
                float eps, float slope, float *restrict out, int nthreads) {
    const int64_t nblocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nthreads)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t i0 = blk * BLOCK, i1 = (i0 + BLOCK < n) ? i0 + BLOCK : n;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i)
            lab_u8(x + 3 * i, lut, m, eps, slope, out + i, out + n + i, out + 2 * n + i);
    }
}

/* planar CIELAB pair -> CIEDE2000 map */
void cdb_ciede2000_lab(const float *restrict p1, const float *restrict p2, int64_t n, float kL, float kC, float kH,
                       float *restrict out, int nthreads) {
    const int64_t nblocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nthreads)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t i0 = blk * BLOCK, i1 = (i0 + BLOCK < n) ? i0 + BLOCK : n;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i)
            out[i] = de2000(p1[i], p1[n + i], p1[2 * n + i], p2[i], p2[n + i], p2[2 * n + i], kL, kC, kH);
    }
}

/* CIE76, CIE94 (q0..q4 = kL, kC, kH, K1, K2) and CMC l:c (q0, q1 = l, c) on planar CIELAB,
   lab1 the reference colour (colour-science's delta_E_CIE1976 / _CIE1994 / _CMC) */
INLINE float de_other(float L1, float a1, float b1, float L2, float a2, float b2, int formula,
                      float q0, float q1, float q2, float q3, float q4) {
    const float RAD = 0.017453292519943295f, DEG = 57.29577951308232f;
    const float dL = L1 - L2, da = a1 - a2, db = b1 - b2;
    if (formula == 0) return sqrtf(dL * dL + da * da + db * db);
    const float C1 = sqrtf(a1 * a1 + b1 * b1), C2 = sqrtf(a2 * a2 + b2 * b2), dC = C1 - C2;
    const float dH2 = da * da + db * db - dC * dC;
    if (formula == 1) {
        const float sC = 1.0f + q3 * C1, sH = 1.0f + q4 * C1;
        const float l = dL / q0, c = dC / (q1 * sC), kh = q2 * sH;
        return sqrtf(l * l + c * c + fmaxf(dH2, 0.0f) / (kh * kh));
    }
    const float sL = L1 < 16.0f ? 0.511f : 0.040975f * L1 / (1.0f + 0.01765f * L1);
    const float sC = 0.0638f * C1 / (1.0f + 0.0131f * C1) + 0.638f;
    float h1 = atan2f(b1, a1) * DEG;
    h1 = h1 < 0.0f ? h1 + 360.0f : h1;
    const float t = (h1 >= 164.0f && h1 <= 345.0f) ? 0.56f + fabsf(0.2f * cosf((h1 + 168.0f) * RAD))
                                                   : 0.36f + fabsf(0.4f * cosf((h1 + 35.0f) * RAD));
    const float C4 = C1 * C1 * C1 * C1, f = sqrtf(C4 / (C4 + 1900.0f)), sH = sC * (f * t + 1.0f - f);
    const float l = dL / (q0 * sL), c = dC / (q1 * sC);
    return sqrtf(fmaxf(l * l + c * c + dH2 / (sH * sH), 0.0f));
}

void cdb_delta_lab(const float *restrict p1, const float *restrict p2, int64_t n, int formula, float q0, float q1,
                   float q2, float q3, float q4, float *restrict out, int nthreads) {
    const int64_t nblocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(dynamic, 8) num_threads(nthreads)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
        const int64_t i0 = blk * BLOCK, i1 = (i0 + BLOCK < n) ? i0 + BLOCK : n;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i)
            out[i] = de_other(p1[i], p1[n + i], p1[2 * n + i], p2[i], p2[n + i], p2[2 * n + i], formula,
                              q0, q1, q2, q3, q4);
    }
}
"""

FLAGS = ("-O3", "-ffast-math", "-march=native", "-fPIC")
"""Compile flags. The link step deliberately omits ``-ffast-math``: linked with it, GCC adds
``crtfastmath.o``, whose constructor switches on flush-to-zero / denormals-are-zero for the whole
process as soon as the library loads, silently changing every later float computation of the user."""
LINK_FLAGS = ("-shared", "-fPIC")
_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$CDBENCH_CACHE_DIR`` or ``~/.cache/cdbench``."""
    return Path(os.environ.get("CDBENCH_CACHE_DIR") or Path.home() / ".cache" / "cdbench") / "kernels"


def _compiler() -> str | None:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build(cc: str) -> Path:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256("\n".join([KERNEL_SOURCE, " ".join(FLAGS + LINK_FLAGS), version, _cpu_signature()]).encode()
                         ).hexdigest()
    target = cache_dir() / f"ciede2000-{key[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "kernel.c"
        src.write_text(KERNEL_SOURCE)
        obj, out = Path(tmp) / "kernel.o", Path(tmp) / "kernel.so"
        errors = []
        for extra in (["-fopenmp"], []):  # without OpenMP the pragmas are ignored: one thread
            res = subprocess.run([cc, *FLAGS, *extra, "-c", "-o", str(obj), str(src)], capture_output=True,
                                 text=True, timeout=300)
            if res.returncode == 0:
                res = subprocess.run([cc, *LINK_FLAGS, *extra, "-o", str(out), str(obj), "-lm"],
                                     capture_output=True, text=True, timeout=300)
            if res.returncode == 0:
                os.replace(out, target)
                return target
            errors.append(res.stderr.strip()[-300:])
        raise RuntimeError("; ".join(errors))


def load_kernel():
    """The compiled library (``cdb_ciede2000_u8``, ``cdb_lab_u8``, ``cdb_ciede2000_lab``), or None
    where it cannot be built (warns once) or ``CDBENCH_COMPILE=0``."""
    if os.environ.get("CDBENCH_COMPILE", "1").lower() in ("0", "false", "no", "off"):
        return None  # switched off for now (not remembered: the variable may change)
    with _LOCK:
        if "lib" in _STATE:
            return _STATE["lib"]
        lib = None
        cc = _compiler()
        try:
            if cc is None:
                raise RuntimeError("no C compiler found (set $CC)")
            lib = ctypes.CDLL(str(_build(cc)))
            p, f32, i64, i32 = ctypes.c_void_p, ctypes.c_float, ctypes.c_int64, ctypes.c_int
            signatures = {
                "cdb_ciede2000_u8": [p, p, i64, p, p, f32, f32, f32, f32, f32, p, i32],
                "cdb_lab_u8": [p, i64, p, p, f32, f32, p, i32],
                "cdb_ciede2000_lab": [p, p, i64, f32, f32, f32, p, i32],
                "cdb_delta_lab": [p, p, i64, i32, f32, f32, f32, f32, f32, p, i32],
            }
            for name, argtypes in signatures.items():
                fn = getattr(lib, name)
                fn.restype = None
                fn.argtypes = argtypes
        except Exception as err:  # noqa: BLE001 - any build/load problem: the torch path is used
            warnings.warn(f"cdbench: the native CIEDE2000 kernel is unavailable ({str(err)[:300]}); "
                          "using the torch path", stacklevel=2)
            lib = None
        _STATE["lib"] = lib
        return lib


def _threads(threads: int | None) -> int:
    return int(threads or torch.get_num_threads())


def _constants(convention: str | LabConvention) -> tuple[LabConvention, torch.Tensor, torch.Tensor]:
    conv = get_convention(convention)
    lut = srgb_lut(dtype=torch.float32, device="cpu", convention=conv).contiguous()
    m = torch.tensor(conv.lab_matrix, dtype=torch.float32).reshape(-1).contiguous()
    return conv, lut, m


def native_ciede2000_map(img1: torch.Tensor, img2: torch.Tensor, *, convention: str | LabConvention = "cie",
                         kL: float = 1.0, kC: float = 1.0, kH: float = 1.0,
                         threads: int | None = None) -> torch.Tensor | None:
    """(H, W) float32 CIEDE2000 map of two (H, W, 3) uint8 CPU tensors, or None without the kernel."""
    lib = load_kernel()
    if lib is None:
        return None
    conv, lut, m = _constants(convention)
    a, b = img1.contiguous(), img2.contiguous()
    h, w, _ = a.shape
    out = torch.empty(h * w, dtype=torch.float32)
    lib.cdb_ciede2000_u8(a.data_ptr(), b.data_ptr(), h * w, lut.data_ptr(), m.data_ptr(), conv.lab_epsilon,
                         conv.lab_slope, float(kL), float(kC), float(kH), out.data_ptr(), _threads(threads))
    return out.reshape(h, w)


def native_lab_planes(img: torch.Tensor, *, convention: str | LabConvention = "cie",
                      threads: int | None = None) -> torch.Tensor | None:
    """(3, H, W) float32 planar CIELAB of an (H, W, 3) uint8 CPU tensor, or None without the kernel.

    For images that occur in several pairs: convert once, then :func:`native_ciede2000_from_lab`."""
    lib = load_kernel()
    if lib is None:
        return None
    conv, lut, m = _constants(convention)
    x = img.contiguous()
    h, w, _ = x.shape
    out = torch.empty(3, h, w, dtype=torch.float32)
    lib.cdb_lab_u8(x.data_ptr(), h * w, lut.data_ptr(), m.data_ptr(), conv.lab_epsilon, conv.lab_slope,
                   out.data_ptr(), _threads(threads))
    return out


def native_ciede2000_from_lab(lab1: torch.Tensor, lab2: torch.Tensor, *, kL: float = 1.0, kC: float = 1.0,
                              kH: float = 1.0, threads: int | None = None) -> torch.Tensor | None:
    """(H, W) float32 CIEDE2000 map of two (3, H, W) planar float32 CIELAB tensors (see above)."""
    lib = load_kernel()
    if lib is None:
        return None
    a, b = lab1.contiguous(), lab2.contiguous()
    _, h, w = a.shape
    out = torch.empty(h * w, dtype=torch.float32)
    lib.cdb_ciede2000_lab(a.data_ptr(), b.data_ptr(), h * w, float(kL), float(kC), float(kH), out.data_ptr(),
                          _threads(threads))
    return out.reshape(h, w)


NATIVE_FORMULAS = ("ciede2000", "cie76", "cie94", "cmc")
_OTHER_IDS = {"cie76": 0, "cie94": 1, "cmc": 2}


def formula_parameters(formula: str, options: dict) -> tuple[float, ...]:
    """The kernel's numeric parameters of a formula and its options (a clear error for unknown ones)."""
    allowed = {"ciede2000": ("kL", "kC", "kH"), "cie76": (), "cie94": ("textiles", "kL", "kC", "kH"),
               "cmc": ("l", "c")}[formula]
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(f"{formula}: unknown option(s) {', '.join(sorted(unknown))}")
    if formula == "ciede2000":
        return tuple(float(options.get(k, 1.0)) for k in ("kL", "kC", "kH"))
    if formula == "cie94":
        textiles = bool(options.get("textiles", False))
        kL = options.get("kL")
        kL = (2.0 if textiles else 1.0) if kL is None else kL
        k1, k2 = (0.048, 0.014) if textiles else (0.045, 0.015)
        return (float(kL), float(options.get("kC", 1.0)), float(options.get("kH", 1.0)), k1, k2)
    if formula == "cmc":
        return (float(options.get("l", 2.0)), float(options.get("c", 1.0)), 0.0, 0.0, 0.0)
    return (0.0, 0.0, 0.0, 0.0, 0.0)


def native_delta_from_lab(lab1: torch.Tensor, lab2: torch.Tensor, formula: str = "ciede2000", *,
                          threads: int | None = None, **options) -> torch.Tensor | None:
    """(H, W) float32 map of ``formula`` (ciede2000, cie76, cie94, cmc) on two (3, H, W) planar CIELAB."""
    if formula == "ciede2000":
        kL, kC, kH = formula_parameters(formula, options)
        return native_ciede2000_from_lab(lab1, lab2, kL=kL, kC=kC, kH=kH, threads=threads)
    lib = load_kernel()
    if lib is None:
        return None
    q = formula_parameters(formula, options)
    a, b = lab1.contiguous(), lab2.contiguous()
    _, h, w = a.shape
    out = torch.empty(h * w, dtype=torch.float32)
    lib.cdb_delta_lab(a.data_ptr(), b.data_ptr(), h * w, _OTHER_IDS[formula], *q, out.data_ptr(), _threads(threads))
    return out.reshape(h, w)


def native_difference_map(img1: torch.Tensor, img2: torch.Tensor, formula: str = "ciede2000", *,
                          convention: str | LabConvention = "cie", threads: int | None = None,
                          **options) -> torch.Tensor | None:
    """(H, W) float32 map of ``formula`` for two (H, W, 3) uint8 CPU tensors, or None without the kernel."""
    if formula == "ciede2000":
        kL, kC, kH = formula_parameters(formula, options)
        return native_ciede2000_map(img1, img2, convention=convention, kL=kL, kC=kC, kH=kH, threads=threads)
    lab1 = native_lab_planes(img1, convention=convention, threads=threads)
    if lab1 is None:
        return None
    lab2 = native_lab_planes(img2, convention=convention, threads=threads)
    return native_delta_from_lab(lab1, lab2, formula, threads=threads, **options)


def available() -> bool:
    """Whether the native kernel can be used on this machine."""
    return load_kernel() is not None


__all__ = ["KERNEL_SOURCE", "NATIVE_FORMULAS", "available", "cache_dir", "formula_parameters", "load_kernel",
           "native_ciede2000_from_lab", "native_ciede2000_map", "native_delta_from_lab", "native_difference_map",
           "native_lab_planes"]
