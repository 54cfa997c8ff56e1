"""Load test of the demo: N concurrent loopback clients, each uploads an ECG, asks a question and reads the
streamed answer. Passes when no request fails and no temporary file is left behind.

    nice .venv/bin/python benchmarks/demo_load.py                 # 20 clients, tiny random stage-2 model
    nice .venv/bin/python benchmarks/demo_load.py --model_dir runs/quickstart/stage2 --clients 20

Without ``--model_dir`` a tiny random stage-2 model (tiny encoder + tiny Llama) is built in a temporary folder,
so the numbers measure the demo's own overhead (upload checks, reading, plotting, queueing, streaming) more
than the model. Exit status 0 = pass, 1 = errors or leaked files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from gradio_client import Client, handle_file

from demo.app import DemoConfig, serve

WFDB = Path(__file__).resolve().parent.parent / "encoder" / "resources" / "wfdb"
EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples"
TORCH_CACHE = "torchinductor_"  # torch's own compile cache in the temp folder, not a demo file


def tiny_model_dir(root: Path) -> Path:
    import torch

    from bridge.configuration import EcgLlmConfig
    from bridge.modeling import EcgLlm
    from bridge.projector import ProjectorConfig
    from llm_finetune.testing import write_tiny_encoder

    torch.manual_seed(0)
    model = EcgLlm.build(
        EcgLlmConfig(llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=3)),
        write_tiny_encoder(root / "encoder"),
    )
    return model.save_pretrained(root / "model")


def one_client(url: str, k: int, results: list, errors: list) -> None:
    record = (
        [WFDB / "s0010_re.hea", WFDB / "s0010_re.dat"]
        if k % 2 == 0
        else [
            EXAMPLES / "synthetic_sinus_70bpm.hea",
            EXAMPLES / "synthetic_sinus_70bpm.dat",
        ]
    )
    t0 = time.perf_counter()
    try:
        client = Client(url, verbose=False, download_files=False)
        plot, info, probs, status = client.predict(
            [handle_file(p) for p in record], None, api_name="/load_upload_a"
        )
        if plot is None or not status.startswith("ECG A loaded"):
            raise RuntimeError(f"upload failed: {status}")
        t1 = time.perf_counter()
        job = client.submit(f"Client {k}: does this ECG show symptoms of normal ECG?", [], api_name="/ask")
        chunks = sum(1 for _ in job)
        messages, probs_a, _, status, _ = job.result()
        if status != "Answer complete." or probs_a is None or len(messages) != 2:
            raise RuntimeError(f"answer failed: {status}")
        t2 = time.perf_counter()
        client.close()
        results.append(
            {"client": k, "upload_s": t1 - t0, "answer_s": t2 - t1, "total_s": t2 - t0, "chunks": chunks}
        )
    except Exception as err:  # noqa: BLE001 - every failure is counted and printed
        errors.append(f"client {k}: {type(err).__name__}: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--model_dir", default=None, help="stage-2 model dir (default: build a tiny random one)"
    )
    parser.add_argument("--concurrency_limit", type=int, default=DemoConfig.concurrency_limit)
    parser.add_argument("--max_new_tokens", type=int, default=16)
    args = parser.parse_args(argv)

    private_tmp = Path(tempfile.mkdtemp(prefix="ecgllm-demo-load-"))
    tempfile.tempdir = str(private_tmp)  # everything the server writes to temp goes here, to count leftovers
    with tempfile.TemporaryDirectory(prefix="model-", dir=private_tmp) as model_root:
        model_dir = Path(args.model_dir) if args.model_dir else tiny_model_dir(Path(model_root))
        cfg = DemoConfig(
            model_dir=str(model_dir),
            port=_free_port(),
            queue_max_size=max(32, args.clients),
            concurrency_limit=args.concurrency_limit,
            max_new_tokens=args.max_new_tokens,
        )
        results: list[dict] = []
        errors: list[str] = []
        with serve(str(model_dir), cfg) as (_, url):
            upload_root = Path(os.environ["GRADIO_TEMP_DIR"])  # set by serve() for the app's uploads
            threads = [
                threading.Thread(target=one_client, args=(url, k, results, errors))
                for k in range(args.clients)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            staging_left = [p.name for p in private_tmp.iterdir() if p not in (upload_root, Path(model_root))]
            staging_left = [n for n in staging_left if not n.startswith(TORCH_CACHE)]
            uploads_kept = sum(1 for p in upload_root.rglob("*") if p.is_file())
        upload_root_left = upload_root.exists()
    leftovers = [p.name for p in private_tmp.iterdir() if not p.name.startswith(TORCH_CACHE)]
    shutil.rmtree(private_tmp, ignore_errors=True)  # after counting: never leave the benchmark's own folder

    totals = sorted(r["total_s"] for r in results)
    summary = {
        "clients": args.clients,
        "ok": len(results),
        "errors": len(errors),
        "wall_s": round(wall, 2),
        "total_s_p50": round(statistics.median(totals), 2) if totals else None,
        "total_s_p95": round(totals[int(0.95 * (len(totals) - 1))], 2) if totals else None,
        "upload_s_p50": round(statistics.median(r["upload_s"] for r in results), 2) if results else None,
        "answer_s_p50": round(statistics.median(r["answer_s"] for r in results), 2) if results else None,
        "stream_chunks_p50": statistics.median(r["chunks"] for r in results) if results else None,
        "staging_dirs_left_while_running": staging_left,
        "uploaded_files_in_gradio_cache_while_running (deleted after 30 min / at shutdown)": uploads_kept,
        "upload_root_left_after_shutdown": upload_root_left,
        "temp_entries_left_after_shutdown": leftovers,
    }
    for line in errors:
        print(line, file=sys.stderr)
    print(json.dumps(summary, indent=2))
    ok = (
        not errors
        and len(results) == args.clients
        and not staging_left
        and not upload_root_left
        and not leftovers
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
