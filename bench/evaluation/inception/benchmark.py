"""Benchmark: the FID Inception forward's backends against fid-helper's TorchScript forward.

    python -m bench.evaluation.inception.benchmark                      # batch 16, 7 rounds
    python -m bench.evaluation.inception.benchmark --batch-size 32 --rounds 9 --compile --openvino
    python -m bench.evaluation.inception.benchmark --rounds 0 --fid-images 1000 --openvino
    python -m bench.evaluation.inception.benchmark --rounds 0 --invariance 1,7,64,500 --backend onnxruntime

Every variant gets the same preprocessed batch (uint8 images through
:func:`bench.evaluation.inception.extractor.preprocess`, NCHW float32) at the same batch size and
thread count; a layout change (channels_last) happens inside the variant, as in the
extractor. Each variant is built, then called once (``build_s``, ``first_call_s``:
compile time, graph export and first-call allocation, measured with
:class:`bench.core.timing.Stopwatch`; the ONNX export, shared by ``onnxruntime`` and
``openvino``, is timed once on its own as ``onnx_export_s``), with the process's peak
RSS reset before the build and read after the first call (``peak_rss_mib``, Linux;
the process holds the variants built before, so ``peak_rss_added_mib``, the rise over
the RSS at the reset, is the variant's own share).
Then all are timed in alternating order, one call each per round, with
:func:`bench.core.timing.measure`, so that load from other processes hits all alike.
Printed per variant: img/s at the median time with the interquartile range, the
median over rounds of the per-round speed-up (TorchScript time / variant time), the
maximum relative feature difference ``max|f - f_ts| / max|f_ts|`` over the whole
(N, 2048) batch, first-call time and peak RSS.

Variants: ``torchscript`` (fid-helper's ``default_1.pt`` through ``torch.jit.load``,
the reference), ``port`` (backend ``reference``: the plain nn.Module port), ``fast``
(backend ``torch``: BN folded, channels_last, oneDNN fused conv + ReLU, inside
:func:`~bench.evaluation.inception.extractor.reuse_freed_memory`, entered per call here),
``onnxruntime`` (backend ``onnxruntime``, when the ``fast-cpu`` extra is installed),
with ``--openvino`` OpenVINO's CPU plugin on the same ONNX graph with
``INFERENCE_PRECISION_HINT=f32`` (its default on CPUs with AMX-BF16 is bfloat16),
with ``--compile`` ``compiled`` (``torch.compile`` of the BN-folded model with
inductor freezing), and with ``--ablation`` the fast path without the heap reuse and
the BN-folded channels_last model without fusion. A variant whose packages are
missing or whose build fails is reported with the reason and dropped.

``--fid-images N`` extracts N images with every variant (half of them smooth colour
fields on a 4x4 grid, half on an 8x8 grid, :func:`example_images`) and prints the FID
between the two halves and its relative difference from TorchScript's.
``--invariance`` extracts features with the extractor (``--backend``) at each listed
batch size on the same images (the largest size's worth, 8 distinct images repeated)
and prints the max relative difference of each against the largest batch size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.core.timing import Stopwatch, measure
from bench.evaluation.inception import backends
from bench.evaluation.inception import extractor as inc
from bench.evaluation.metrics.fid import fid_from_features


def example_images(n: int, size: int = 32, seed: int = 0, grid: int = 4) -> torch.Tensor:
    """(n, 3, size, size) uint8: smooth random colour fields (bicubic from ``grid`` x ``grid``) plus noise,
    fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, grid, grid, generator=g) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    noisy = smooth + 24 * torch.randn(n, 3, size, size, generator=g)
    return noisy.round().clamp(0, 255).to(torch.uint8)


def load_torchscript() -> torch.jit.ScriptModule:
    """fid-helper's TorchScript Inception (hash-checked), in eval mode; only as the reference."""
    path = inc.verified_weights_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; used here only as the reference
        return torch.jit.load(str(path), map_location="cpu").eval()


def max_rel_diff(a: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|a - ref| / max|ref|`` over all entries."""
    return float((a.double() - ref.double()).abs().max() / ref.double().abs().max())


# ----------------------------------------------------------------------------- memory (Linux)


def _proc_status_mib(field: str) -> float | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    line = next(ln for ln in status.read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_peak_rss() -> float | None:
    """Reset the process's peak resident set size (``VmHWM``) to its current RSS (Linux >= 4.0); that RSS, MiB."""
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")
    return _proc_status_mib("VmRSS")


def peak_rss_mib() -> float | None:
    """The process's peak resident set size since :func:`reset_peak_rss`, MiB (``None`` off Linux)."""
    return _proc_status_mib("VmHWM")


# ----------------------------------------------------------------------------- variants

Forward = Callable[[torch.Tensor], torch.Tensor]


def _fast_with_heap_reuse() -> Forward:
    fast = backends.build_forward("torch")

    def call(x):
        with inc.reuse_freed_memory():  # entered per call, as conservative as it gets
            return fast(x)

    return call


def _openvino(threads: int) -> Forward:
    """OpenVINO's CPU plugin on the exported ONNX graph, float32 inference precision, latency hint."""
    import io

    import openvino as ov

    model = ov.convert_model(io.BytesIO(backends.inception_onnx()))
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda x: torch.from_numpy(request.infer({0: x.contiguous().numpy()})[0].copy())


def _compiled() -> Forward:
    """``torch.compile`` (inductor) of the BN-folded channels_last model with freezing; compiles on the first call."""
    import torch._inductor.config as inductor_config

    folded = inc.fast_inference_model(inc.load_inception(), fused=False)
    compiled = torch.compile(folded, dynamic=False)

    def call(x):
        with inductor_config.patch(freezing=True):
            return compiled(x.contiguous(memory_format=torch.channels_last))

    return call


def _folded_unfused() -> Forward:
    unfused = inc.fast_inference_model(inc.load_inception(), fused=False)
    return lambda x: unfused(x.contiguous(memory_format=torch.channels_last))


def variant_builders(threads: int, *, openvino: bool, compile: bool, ablation: bool) -> tuple[dict, dict]:
    """(name -> builder of a forward, name -> why it is not available) for the requested variants."""
    builders: dict[str, Callable[[], Forward]] = {
        "torchscript": load_torchscript,
        "port": lambda: backends.build_forward("reference"),
        "fast": _fast_with_heap_reuse,
    }
    missing: dict[str, str] = {}
    if backends.missing_packages("onnxruntime"):
        needs = ", ".join(backends.missing_packages("onnxruntime"))
        missing["onnxruntime"] = f"needs {needs}; {backends.FAST_CPU_EXTRA}"
    else:
        builders["onnxruntime"] = lambda: backends.build_forward("onnxruntime")
    if openvino:
        lacking = [p for p in ("openvino", "onnx", "onnxscript") if importlib.util.find_spec(p) is None]
        if lacking:
            missing["openvino"] = f"needs {', '.join(lacking)}: pip install openvino onnx onnxscript"
        else:
            builders["openvino"] = lambda: _openvino(threads)
    if compile:
        builders["compiled"] = _compiled
    if ablation:
        builders["fast_without_heap_reuse"] = lambda: backends.build_forward("torch")
        builders["folded_channels_last_only"] = _folded_unfused
    return builders, missing


def build_all(builders: dict, x: torch.Tensor) -> tuple[dict, dict, dict]:
    """Build each variant and call it once on ``x``: (forwards, per-variant build stats, failures)."""
    forwards, stats, failed = {}, {}, {}
    if any(k in builders for k in ("onnxruntime", "openvino")):
        with Stopwatch() as sw:
            backends.inception_onnx()
        stats["onnx_export"] = {"onnx_export_s": round(sw.seconds, 2)}
    for name, build in builders.items():
        rss_before = reset_peak_rss()
        try:
            with Stopwatch() as b:
                f = build()
            with Stopwatch() as c, torch.inference_mode():
                out = f(x)
        except (RuntimeError, ImportError, OSError) as e:  # a compiler or a plugin missing on this machine
            failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        forwards[name] = f
        stats[name] = {"build_s": round(b.seconds, 2), "first_call_s": round(c.seconds, 2),
                       "peak_rss_mib": peak_rss_mib(), "rss_before_mib": rss_before, "first_output": out}
    return forwards, stats, failed


def speed(batch_size: int, rounds: int, threads: int, *, openvino=False, compile=False, ablation=False) -> dict:
    x = inc.preprocess(example_images(batch_size))
    builders, missing = variant_builders(threads, openvino=openvino, compile=compile, ablation=ablation)
    variants, stats, failed = build_all(builders, x)
    ref = stats["torchscript"]["first_output"]
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        for r in range(rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for k in order:
                times[k].append(measure(lambda k=k: variants[k](x), warmup=0, repeats=1).median_s)
    out = {"batch_size": batch_size, "rounds": rounds, "unavailable": {**missing, **failed},
           "notes": {"fast_fused_conv_relu": inc.mkldnn_fusion_available(), **stats.pop("onnx_export", {})},
           "variants": {}}
    for k, v in times.items():
        v = np.asarray(v)
        q25, med, q75 = np.percentile(v, [25, 50, 75])
        s = stats[k]
        out["variants"][k] = {
            "img_per_s": batch_size / med,
            "img_per_s_iqr": [batch_size / q75, batch_size / q25],
            "speedup_vs_torchscript": float(np.median(np.asarray(times["torchscript"]) / v)),
            "max_rel_diff_vs_torchscript": max_rel_diff(s["first_output"], ref),
            "build_s": s["build_s"], "first_call_s": s["first_call_s"], "peak_rss_mib": s["peak_rss_mib"],
            "peak_rss_added_mib": (s["peak_rss_mib"] or 0.0) - (s["rss_before_mib"] or 0.0),
            "times_s": [round(t, 3) for t in v.tolist()],
        }
    return out


def fid_agreement(n: int, batch_size: int, threads: int, *, openvino=False, compile=False) -> dict:
    """FID between two halves of ``n`` images (4x4- vs 8x8-grid colour fields), per variant, vs TorchScript's."""
    images = torch.cat([example_images(n // 2, seed=10, grid=4), example_images(n - n // 2, seed=11, grid=8)])
    builders, missing = variant_builders(threads, openvino=openvino, compile=compile, ablation=False)
    forwards, _, failed = build_all(builders, inc.preprocess(images[:2]))
    feats = {}
    with torch.inference_mode():
        for k, f in forwards.items():
            feats[k] = torch.cat([f(inc.preprocess(c)).float() for c in images.split(batch_size)])
    ref = feats["torchscript"]
    ref_fid = fid_from_features(ref[: n // 2].double().numpy(), ref[n // 2 :].double().numpy())
    out = {"images": n, "unavailable": {**missing, **failed}, "fid_torchscript": ref_fid, "variants": {}}
    for k, f in feats.items():
        fid = fid_from_features(f[: n // 2].double().numpy(), f[n // 2 :].double().numpy())
        out["variants"][k] = {"fid": fid, "fid_rel_diff_vs_torchscript": abs(fid - ref_fid) / ref_fid,
                              "max_rel_diff_vs_torchscript": max_rel_diff(f, ref)}
    return out


def invariance(sizes: list[int], backend: str | None = None) -> dict:
    n = max(sizes)
    images = example_images(8).repeat((n + 7) // 8, 1, 1, 1)[:n]
    ext = inc.InceptionExtractor(backend=backend)
    feats = {}
    for bs in sizes:
        ext.batch_size = bs
        feats[bs] = ext(images[: max(bs, 2)])
    ref = feats[n]
    return {"backend": ext.backend, "sizes": {
        str(bs): {"images": len(f), "max_rel_diff_vs_largest_batch": max_rel_diff(f, ref[: len(f)]),
                  "bitwise_equal": bool(torch.equal(f, ref[: len(f)]))} for bs, f in feats.items()}}


def _print_speed(result: dict) -> None:
    s = result["speed"]
    print(f"batch size {s['batch_size']}, {s['rounds']} interleaved rounds, {result['threads']} threads, "
          f"torch {result['torch']}, load average before {result['load_average_before'][0]:.2f}")
    print(f"  {'variant':26s} {'img/s':>6s} {'(IQR)':>13s} {'speed-up':>8s} {'max rel diff':>12s} "
          f"{'build s':>7s} {'1st call s':>10s} {'peak RSS MiB (added)':>20s}")
    for k, v in s["variants"].items():
        lo, hi = v["img_per_s_iqr"]
        print(f"  {k:26s} {v['img_per_s']:6.2f} ({lo:5.2f}-{hi:5.2f}) {v['speedup_vs_torchscript']:7.2f}x "
              f"{v['max_rel_diff_vs_torchscript']:12.2e} {v['build_s']:7.2f} {v['first_call_s']:10.2f} "
              f"{v['peak_rss_mib'] or float('nan'):12.0f} ({v['peak_rss_added_mib']:+6.0f})")
    for k, v in {**s["notes"], **{f"unavailable {k}": v for k, v in s["unavailable"].items()}}.items():
        print(f"  {k}: {v}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.evaluation.inception.benchmark",
                                description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7, help="timed calls per variant (0: skip the speed benchmark)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--openvino", action="store_true", help="also run OpenVINO's CPU plugin (float32)")
    p.add_argument("--compile", action="store_true", help="also run torch.compile (inductor, freezing)")
    p.add_argument("--ablation", action="store_true", help="also time the fast path without heap reuse / fusion")
    p.add_argument("--fid-images", type=int, default=0, help="FID agreement on this many images (0: skip), e.g. 1000")
    p.add_argument("--invariance", default="", help="comma-separated batch sizes, e.g. 1,7,64,500")
    p.add_argument("--backend", default=None, help="extractor backend for --invariance (default: auto)")
    p.add_argument("--json", default="", help="also write the results to this file")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    result = {
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_before": os.getloadavg(), "weights_sha256": inc.WEIGHTS_SHA256,
    }
    if a.rounds > 0:
        result["speed"] = speed(a.batch_size, a.rounds, a.threads, openvino=a.openvino, compile=a.compile,
                                ablation=a.ablation)
        _print_speed(result)
    if a.fid_images:
        result["fid"] = r = fid_agreement(a.fid_images, a.batch_size, a.threads, openvino=a.openvino, compile=a.compile)
        print(f"FID between two halves of {r['images']} images, TorchScript: {r['fid_torchscript']:.6f}")
        for k, v in r["variants"].items():
            print(f"  {k:26s} FID {v['fid']:.6f}  rel diff {v['fid_rel_diff_vs_torchscript']:.2e}  "
                  f"max rel feature diff {v['max_rel_diff_vs_torchscript']:.2e}")
        for k, v in r["unavailable"].items():
            print(f"  unavailable {k}: {v}")
    if a.invariance:
        result["invariance"] = inv = invariance([int(b) for b in a.invariance.split(",")], a.backend)
        for bs, v in inv["sizes"].items():
            print(f"  {inv['backend']} batch size {bs:>4s}: {v['images']} images, max rel diff vs the largest batch "
                  f"{v['max_rel_diff_vs_largest_batch']:.2e}, bitwise equal {v['bitwise_equal']}")
    result["load_average_after"] = os.getloadavg()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2, default=lambda o: None)


if __name__ == "__main__":
    main()
