"""Benchmark: genbench's Inception forward against fid-helper's TorchScript forward.

    python -m bench.metrics.inception_bench                      # batch 16, 7 rounds
    python -m bench.metrics.inception_bench --batch-size 32 --rounds 9 --compile
    python -m bench.metrics.inception_bench --invariance 1,7,64,500 --rounds 0

Both forwards get the same preprocessed batch (uint8 images through
:func:`bench.metrics.inception.preprocess`), at the same batch size and thread
count. They are timed in alternating order, one call each per round, with
:func:`bench.timing.measure` (one warm-up call each first), so that load from other
processes hits both alike. Printed per variant: img/s at the median time with the
interquartile range, the median over rounds of the per-round speedup (TorchScript
time / variant time), and the maximum relative feature difference
``max|f - f_ts| / max|f_ts|`` over the whole (N, 2048) batch.

Variants: ``torchscript`` (fid-helper's ``default_1.pt`` through ``torch.jit.load``,
the reference), ``port`` (the plain nn.Module port), ``fast`` (what
:class:`~bench.metrics.inception.InceptionExtractor` uses: BN folded, channels_last,
oneDNN fused conv + ReLU on shape-packed weights, inside
:func:`~bench.metrics.inception.reuse_freed_memory`, entered per call here), with
``--ablation`` the fast path without the heap reuse and the BN-folded channels_last
model without fusion, and with ``--compile`` ``compiled`` (``torch.compile`` of the
BN-folded model with inductor freezing; a failure is reported and the variant dropped).

``--invariance`` extracts features with the fast extractor at each listed batch
size on the same images (the largest size's worth, 8 distinct images repeated) and
prints the max relative difference of each against the largest batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import torch

from bench.metrics import inception as inc
from bench.timing import measure


def example_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) uint8: smooth random colour fields plus noise, fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 255
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


def try_compile(model: torch.nn.Module, x: torch.Tensor):
    """``torch.compile`` with inductor freezing, first call included; ``(fn, seconds, None)`` or ``(None, 0, reason)``."""
    try:
        import torch._inductor.config as inductor_config

        t0 = time.perf_counter()
        compiled = torch.compile(model, dynamic=False)
        with inductor_config.patch(freezing=True), torch.inference_mode():
            compiled(x)
        return compiled, time.perf_counter() - t0, None
    except Exception as e:  # no C++ compiler, unsupported platform, ...
        return None, 0.0, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def speed(batch_size: int, rounds: int, with_compile: bool, ablation: bool = False) -> dict:
    images = example_images(batch_size)
    x = inc.preprocess(images)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    ts = load_torchscript()
    port = inc.load_inception()
    fast = inc.fast_inference_model(port)
    def fast_call():
        with inc.reuse_freed_memory():  # entered per call, as conservative as it gets
            return fast(x_cl)

    variants = {"torchscript": lambda: ts(x), "port": lambda: port(x), "fast": fast_call}
    if ablation:
        unfused = inc.fast_inference_model(port, fused=False)
        variants["fast_without_heap_reuse"] = lambda: fast(x_cl)
        variants["folded_channels_last_only"] = lambda: unfused(x_cl)
    notes = {"fast_fused_conv_relu": inc.mkldnn_fusion_available()}
    if with_compile:
        compiled, secs, err = try_compile(inc.fast_inference_model(port, fused=False), x_cl)
        if compiled is None:
            notes["compile_failed"] = err
        else:
            notes["compile_seconds"] = round(secs, 1)
            variants["compiled"] = lambda: compiled(x_cl)
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        ref = ts(x)
        diffs = {k: max_rel_diff(f(), ref) for k, f in variants.items()}  # doubles as the warm-up call
        for r in range(rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for k in order:
                times[k].append(measure(variants[k], warmup=0, repeats=1).median_s)
    out = {"batch_size": batch_size, "rounds": rounds, "notes": notes, "variants": {}}
    for k, v in times.items():
        v = np.asarray(v)
        q25, med, q75 = np.percentile(v, [25, 50, 75])
        out["variants"][k] = {
            "img_per_s": batch_size / med,
            "img_per_s_iqr": [batch_size / q75, batch_size / q25],
            "speedup_vs_torchscript": float(np.median(np.asarray(times["torchscript"]) / v)),
            "max_rel_diff_vs_torchscript": diffs[k],
            "times_s": [round(t, 3) for t in v.tolist()],
        }
    return out


def invariance(sizes: list[int]) -> dict:
    n = max(sizes)
    images = example_images(8).repeat((n + 7) // 8, 1, 1, 1)[:n]
    ext = inc.InceptionExtractor()
    feats = {}
    for bs in sizes:
        ext.batch_size = bs
        feats[bs] = ext(images[: max(bs, 2)])
    ref = feats[n]
    return {str(bs): {"images": len(f), "max_rel_diff_vs_batch_%d" % n: max_rel_diff(f, ref[: len(f)]),
                      "bitwise_equal": bool(torch.equal(f, ref[: len(f)]))} for bs, f in feats.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.metrics.inception_bench", description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7, help="timed calls per variant (0: skip the speed benchmark)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--compile", action="store_true", help="also time torch.compile (inductor, freezing)")
    p.add_argument("--ablation", action="store_true", help="also time the fast path without heap reuse / fusion")
    p.add_argument("--invariance", default="", help="comma-separated batch sizes, e.g. 1,7,64,500")
    p.add_argument("--json", default="", help="also write the results to this file")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    result = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "load_average_before": os.getloadavg(), "weights_sha256": inc.WEIGHTS_SHA256,
    }
    if a.rounds > 0:
        result["speed"] = speed(a.batch_size, a.rounds, a.compile, a.ablation)
        s = result["speed"]
        print(f"batch size {s['batch_size']}, {s['rounds']} interleaved rounds, {result['threads']} threads, "
              f"torch {result['torch']}, load average before {result['load_average_before'][0]:.2f}")
        for k, v in s["variants"].items():
            lo, hi = v["img_per_s_iqr"]
            print(f"  {k:12s} {v['img_per_s']:6.2f} img/s (IQR {lo:.2f}-{hi:.2f})  speedup {v['speedup_vs_torchscript']:.2f}x"
                  f"  max rel diff {v['max_rel_diff_vs_torchscript']:.2e}")
        for k, v in s["notes"].items():
            print(f"  {k}: {v}")
    if a.invariance:
        result["invariance"] = invariance([int(b) for b in a.invariance.split(",")])
        for bs, v in result["invariance"].items():
            print(f"  batch size {bs:>4s}: {v['images']} images, max rel diff vs the largest batch "
                  f"{list(v.values())[1]:.2e}, bitwise equal {v['bitwise_equal']}")
    result["load_average_after"] = os.getloadavg()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
