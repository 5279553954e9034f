"""Embedding on the CPU: decoding and the network, torch against ONNX Runtime, OpenVINO, int8.

    python benchmarks/embedding_backends.py --data ../shared/data/photos/flowers --photos 256

For each shipped EfficientNet-Lite variant: decode + preprocess of ``--photos`` photos
(serially and in a pool of processes), then the network alone on the decoded batch in
each backend (batches of 32, median of ``--repeats``), and each backend's features
against torch's (cosine per photo: the minimum must be >= 0.999 to qualify). Prints a
table and writes JSON to benchmarks/results/scale/embedding-backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aeep_core.data.backbones import BACKBONES, load_backbone  # noqa: E402
from aeep_core.data.embedders import TorchEmbedder  # noqa: E402
from aeep_core.data.features import decode_photos, photo_array  # noqa: E402
from aeep_core.data.images import list_image_files  # noqa: E402
from aeep_core.data.onnx_backend import OnnxEmbedder, export_onnx  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "scale" / "embedding-backends.json"


def cpu_name() -> str:
    """CPU model and the vector flags that matter here, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    wanted = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({os.cpu_count()} cores; {' '.join(wanted)})"


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _decode_chunk(args: tuple[list[str], object]) -> int:
    paths, prep = args
    for p in paths:
        photo_array(Path(p), prep)  # type: ignore[arg-type]
    return len(paths)


def decode_rates(paths: list[Path], prep, repeats: int, workers: int) -> dict[str, float]:
    """Photos/s decoded and preprocessed: serially, and in ``workers`` processes."""
    serial = _timed(lambda: decode_photos(paths, prep), repeats)
    chunks = [([str(p) for p in paths[i :: workers * 4]], prep) for i in range(workers * 4)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode_chunk, chunks))  # start the workers before timing
        parallel = _timed(lambda: list(pool.map(_decode_chunk, chunks)), repeats)
    return {"serial": len(paths) / serial, f"pool_{workers}": len(paths) / parallel}


class _OpenVino:
    backend = "openvino"

    def __init__(self, model: Path, threads: int, precision: str = "f32"):
        import openvino as ov

        # f32: OpenVINO would otherwise run in bf16 on CPUs that have it (avx512_bf16/AMX),
        # which moved the features too far (cosine 0.995 on this machine)
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
        self.compiled = ov.Core().compile_model(str(model), "CPU", config)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled(images)[0], dtype=np.float32)


def _int8(model: Path, out: Path, dim: int, prep, threads: int) -> OnnxEmbedder:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(model), str(out), weight_type=QuantType.QUInt8)
    return OnnxEmbedder(out, dim, prep, threads)


def measure(name: str, paths: list[Path], repeats: int, threads: int, workers: int, tmp: Path, int8: bool) -> dict:
    model = load_backbone(name)
    prep = model.preprocessing
    images, _, _ = decode_photos(paths, prep)
    torch_embed = TorchEmbedder(model, "cpu")
    onnx_path = export_onnx(name, tmp / f"{name}.onnx")
    backends = {"torch": torch_embed, "onnx": OnnxEmbedder(onnx_path, model.feature_dim, prep, threads)}
    try:
        backends["openvino"] = _OpenVino(onnx_path, threads)
        backends["openvino-bf16"] = _OpenVino(onnx_path, threads, "bf16")
    except Exception as exc:  # noqa: BLE001 - an absent or failing runtime is a row, not a crash
        print(f"openvino unavailable: {exc}")
    if int8:
        try:
            backends["onnx-int8"] = _int8(onnx_path, tmp / f"{name}-int8.onnx", model.feature_dim, prep, threads)
        except Exception as exc:  # noqa: BLE001
            print(f"int8 quantisation failed: {exc}")

    def run(embed) -> np.ndarray:
        return np.concatenate([embed(images[i : i + 32]) for i in range(0, len(images), 32)])

    reference = run(torch_embed)
    rows, times = {}, {label: [] for label in backends}
    for label, embed in backends.items():
        feats = run(embed)  # warm-up, and the features compared
        cos = (feats * reference).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12)
        rows[label] = {"cos_min": float(cos.min()), "cos_mean": float(cos.mean())}
    for _ in range(repeats):  # round-robin: every backend meets the same background load
        for label, embed in backends.items():
            times[label].append(_timed(lambda embed=embed: run(embed), 1))
    for label in backends:
        rows[label]["network_images_s"] = len(images) / statistics.median(times[label])
        rows[label]["repeats_s"] = times[label]
    decode = decode_rates(paths, prep, repeats, workers)
    for r in rows.values():
        # serial pipeline: decode, then the network, on the same cores
        r["end_to_end_images_s"] = 1.0 / (1.0 / decode["serial"] + 1.0 / r["network_images_s"])
    return {"size": prep.size, "decode_images_s": decode, "backends": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/photos/flowers"))
    ap.add_argument("--photos", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--workers", type=int, default=2, help="decoding processes")
    ap.add_argument("--int8", action="store_true", help="also ONNX Runtime's dynamic int8 quantisation (slow to make)")
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args(argv)
    all_paths = list_image_files(args.data)
    if not all_paths:
        print(f"{args.data}: no photos; point --data to a folder of photos")
        return 2
    paths = all_paths[:: max(1, len(all_paths) // args.photos)][: args.photos]
    torch.set_num_threads(args.threads)
    results = {
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "threads": args.threads,
        "photos": len(paths),
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in BACKBONES:
            results["variants"][name] = measure(name, paths, args.repeats, args.threads, args.workers, Path(tmp), args.int8)
    print(f"{results['cpu']}; torch {torch.__version__}, {args.threads} threads, {len(paths)} photos")
    print("| backbone | backend | network images/s | vs torch | decode+network images/s | cosine min |")
    print("|---|---|---|---|---|---|")
    for name, v in results["variants"].items():
        base = v["backends"]["torch"]["network_images_s"]
        for label, r in v["backends"].items():
            print(
                f"| {name} | {label} | {r['network_images_s']:.1f} | {r['network_images_s'] / base:.2f}x "
                f"| {r['end_to_end_images_s']:.1f} | {r['cos_min']:.5f} |"
            )
        d = v["decode_images_s"]
        print(f"| {name} | decode+preprocess alone | " + ", ".join(f"{k} {x:.1f}" for k, x in d.items()) + " | | | |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
