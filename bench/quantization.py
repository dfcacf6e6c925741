"""CER of the float, float16 and int8 TFLite exports of a trained work dir on a data set (issue 5: int8 must stay
within 1 point of float). Prints one JSON line.

  python bench/quantization.py --workdir runs/demo --data data/corpus/test_clean/manifest.jsonl \
      [--signature ctc_greedy] [--limit 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--data", required=True, help="a .jsonl manifest or Kaldi dir")
    parser.add_argument("--signature", default="serving_default", help="serving_default, ctc_greedy, attention_beam")
    parser.add_argument("--limit", type=int, default=0, help="first N utterances only (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tf_jointctc.data.manifest import read_dataset
    from tf_jointctc.decoding.options import DecodeOptions
    from tf_jointctc.export.to_tflite import export_tflite
    from tf_jointctc.metrics import error_rates
    from tf_jointctc.recognizer import Recognizer
    from tf_jointctc.text import normalize
    from tf_jointctc.trained_model import load_trained_model

    model, config, vocab, checkpoint = load_trained_model(args.workdir, "best")
    utterances = read_dataset(args.data)
    if args.limit:
        utterances = utterances[: args.limit]
    references = [normalize(u.text) for u in utterances]
    result = {"benchmark": "quantization", "workdir": args.workdir, "data": args.data, "checkpoint": checkpoint,
              "signature": args.signature, "utterances": len(utterances), "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="jointctc_quant_") as tmp:
        paths = {q: os.path.join(tmp, f"model-{q}.tflite") for q in ("none", "float16", "int8")}
        export_tflite(model, vocab, paths, DecodeOptions.from_config(config.decode, lm_weight=0.0))  # no LM
        for quantize, path in paths.items():
            recognizer = Recognizer.load(path, num_threads=args.threads)
            started = time.perf_counter()
            hypotheses = recognizer.transcribe([u.audio for u in utterances], signature=args.signature)
            seconds = time.perf_counter() - started
            rates = error_rates(references, hypotheses)
            result[quantize] = {"cer": round(rates["cer"], 2), "wer": round(rates["wer"], 2),
                                "bytes": os.path.getsize(path), "decode_seconds": round(seconds, 1)}
    result["int8_minus_float_cer"] = round(result["int8"]["cer"] - result["none"]["cer"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
