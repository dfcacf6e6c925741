import json

from tests.helpers import last_json_line, run_cli


def test_inspect_corpus_reads_every_split_through_the_pipeline(tiny_corpus, tmp_path):
    result = run_cli("tf_jointctc.cli.inspect_corpus", f"--corpus={tiny_corpus}", f"--cache_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = last_json_line(result.stdout)
    manifests = {
        split: sum(1 for _ in open(tiny_corpus / split / "manifest.jsonl"))
        for split in ("train", "dev", "test_clean", "test_noisy")
    }
    for split, count in manifests.items():
        entry = report["splits"][split]
        assert entry["utterances"] + entry["skipped"] == count
        assert entry["utterances"] > 0 and entry["feature_dim"] == 120 and entry["features_finite"]
    # The shards it wrote are the cache that training with the same config reuses.
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["num_utterances"] == report["splits"]["train"]["utterances"]
