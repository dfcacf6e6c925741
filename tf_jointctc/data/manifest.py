"""Reading a data set: a JSONL manifest or a Kaldi data directory, into a list of `Utterance`.

A JSONL manifest has one object per line, `{"id": str, "audio": path, "text": str, "duration": float?}`, with
`audio` relative to the manifest's folder or absolute. A Kaldi data directory has `wav.scp` (`<recording-id>
<path>`, plain paths only), `text` (`<utterance-id> <transcript>`) and optionally `segments`
(`<utterance-id> <recording-id> <start-seconds> <end-seconds>`, end -1 meaning the end of the file).

Bad entries are counted in a `SkipReport` and left out; only a data set that does not exist or has neither
form raises.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, NoReturn

from tf_jointctc.data import skips
from tf_jointctc.data.skips import SkipReport

MANIFEST_NAME = "manifest.jsonl"
KALDI_FILES = ("wav.scp", "text")


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance of a data set.

    Attributes:
      id: the utterance id, unique within the data set.
      audio: absolute path of the audio file (WAV, FLAC, any rate and channel count).
      text: the raw transcript, not normalized.
      start: start of the utterance in the file, in seconds (Kaldi `segments`), or None for the file's start.
      end: end of the utterance in seconds, or None for the file's end.
      duration: duration in seconds if the manifest gives it (informative only), else None.
    """

    id: str
    audio: str
    text: str
    start: float | None = None
    end: float | None = None
    duration: float | None = None


def dataset_files(path: str) -> list[str]:
    """The files that define a data set (manifest, or wav.scp/text/segments): what a cache fingerprints."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        return [path]
    if _is_kaldi_dir(path):
        return [os.path.join(path, name) for name in ("wav.scp", "segments", "text") if _exists(path, name)]
    if _exists(path, MANIFEST_NAME):
        return [os.path.join(path, MANIFEST_NAME)]
    _raise_not_a_dataset(path)


def fingerprint(path: str) -> list[dict[str, Any]]:
    """Absolute path, size and modification time (ns) of each file of the data set (not of the audio)."""
    out = []
    for name in dataset_files(path):
        stat = os.stat(name)
        out.append({"path": name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return out


def read_dataset(path: str, report: SkipReport | None = None) -> list[Utterance]:
    """Reads a data set in either form.

    Args:
      path: a `.jsonl` manifest, a Kaldi data directory (with `wav.scp` and `text`), or a folder holding a
        `manifest.jsonl`.
      report: receives the entries left out and why (`bad_manifest_line`, `duplicate_id`, `no_audio_for_id`,
        `no_text_for_id`, `unsupported_wav_scp_entry`).

    Returns:
      The utterances in file order (wav.scp's or segments' order for Kaldi). Audio files are not opened here.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: `path` is neither a manifest file nor a folder with a data set.
    """
    report = report if report is not None else SkipReport()
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"data set {path!r} does not exist (expected a .jsonl manifest or a Kaldi data dir)")
    if os.path.isfile(path):
        return read_manifest(path, report)
    if _is_kaldi_dir(path):
        return read_kaldi_dir(path, report)
    if _exists(path, MANIFEST_NAME):
        return read_manifest(os.path.join(path, MANIFEST_NAME), report)
    _raise_not_a_dataset(path)


def read_manifest(path: str, report: SkipReport) -> list[Utterance]:
    """Reads a JSONL manifest; see `read_dataset`."""
    folder = os.path.dirname(os.path.abspath(path))
    utterances: list[Utterance] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{os.path.basename(path)}:{line_number}"
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                report.add(skips.BAD_MANIFEST_LINE, where, f"not JSON: {error.msg}")
                continue
            problem = _manifest_entry_problem(entry)
            if problem:
                report.add(skips.BAD_MANIFEST_LINE, where, problem)
                continue
            utt_id = str(entry["id"])
            if utt_id in seen:
                report.add(skips.DUPLICATE_ID, utt_id, where)
                continue
            seen.add(utt_id)
            duration = entry.get("duration")
            utterances.append(
                Utterance(
                    id=utt_id,
                    audio=os.path.normpath(os.path.join(folder, os.path.expanduser(entry["audio"]))),
                    text=entry["text"],
                    duration=None if duration is None else float(duration),
                )
            )
    return utterances


def read_kaldi_dir(path: str, report: SkipReport) -> list[Utterance]:
    """Reads a Kaldi data directory; see `read_dataset`. Relative wav.scp paths are taken from the directory
    (or, Kaldi's convention, from the working directory when only that one exists)."""
    recordings: dict[str, str] = {}
    unsupported: dict[str, str] = {}  # recording id -> why; counted per utterance below
    for rec_id, rest in _read_table(os.path.join(path, "wav.scp"), report):
        if rest.endswith("|") or rest == "-":
            unsupported[rec_id] = f"wav.scp entry of {rec_id!r} is a piped command; write the audio to a file first"
        elif _looks_like_ark(rest):
            unsupported[rec_id] = f"wav.scp entry of {rec_id!r} is an ark offset; give a plain audio file path"
        elif not rest:
            unsupported[rec_id] = f"wav.scp entry of {rec_id!r} has no path"
        elif rec_id in recordings:
            report.add(skips.DUPLICATE_ID, rec_id, "wav.scp")
        else:
            recordings[rec_id] = _resolve_kaldi_path(path, rest)
    texts: dict[str, str] = {}
    for utt_id, rest in _read_table(os.path.join(path, "text"), report):
        if utt_id in texts:
            report.add(skips.DUPLICATE_ID, utt_id, "text")
        else:
            texts[utt_id] = rest
    # (utterance id, recording id, start, end) in file order.
    entries: list[tuple[str, str, float | None, float | None]] = []
    seen: set[str] = set()  # segment ids, valid or not
    if _exists(path, "segments"):
        for utt_id, rest in _read_table(os.path.join(path, "segments"), report):
            fields = rest.split()
            try:
                rec_id, start, end = fields[0], float(fields[1]), float(fields[2])
                if len(fields) != 3 or start < 0 or (end >= 0 and end <= start):
                    raise ValueError
            except (ValueError, IndexError):
                report.add(skips.BAD_MANIFEST_LINE, utt_id, f"bad segments entry {rest!r}")
                seen.add(utt_id)  # counted once, here: not again as a text line without audio
                continue
            if utt_id in seen:
                report.add(skips.DUPLICATE_ID, utt_id, "segments")
                continue
            seen.add(utt_id)
            entries.append((utt_id, rec_id, start, None if end < 0 else end))
    else:
        entries = [(rec_id, rec_id, None, None) for rec_id in [*recordings, *unsupported]]
    utterances = []
    for utt_id, rec_id, start, end in entries:
        if rec_id in unsupported:
            report.add(skips.UNSUPPORTED_WAV_SCP_ENTRY, utt_id, unsupported[rec_id])
            continue
        if rec_id not in recordings:
            report.add(skips.NO_AUDIO_FOR_ID, utt_id, f"recording {rec_id!r} not in wav.scp")
            continue
        if utt_id not in texts:
            report.add(skips.NO_TEXT_FOR_ID, utt_id, "not in text")
            continue
        utterances.append(Utterance(id=utt_id, audio=recordings[rec_id], text=texts[utt_id], start=start, end=end))
    listed = {e[0] for e in entries} | seen
    for utt_id in texts:
        if utt_id not in listed:
            where = "segments" if _exists(path, "segments") else "wav.scp"
            report.add(skips.NO_AUDIO_FOR_ID, utt_id, f"in text but not in {where}")
    return utterances


def _manifest_entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "not a JSON object"
    missing = [key for key in ("id", "audio", "text") if key not in entry]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if not isinstance(entry["audio"], str) or not entry["audio"]:
        return "'audio' is not a path"
    if not isinstance(entry["text"], str):
        return "'text' is not a string"
    if not isinstance(entry["id"], str | int) or str(entry["id"]) == "":
        return "'id' is not a string"
    duration = entry.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)):
        return "'duration' is not a number"
    return None


def _read_table(path: str, report: SkipReport) -> list[tuple[str, str]]:
    """Kaldi table: `<key> <rest of line>` per line; `rest` stripped, possibly empty."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            key, _, rest = line.partition(" ")
            if "\t" in key:  # some tools separate with a tab
                key, _, more = key.partition("\t")
                rest = f"{more} {rest}" if rest else more
            rows.append((key, rest.strip()))
    return rows


def _resolve_kaldi_path(folder: str, audio: str) -> str:
    audio = os.path.expanduser(audio)
    if os.path.isabs(audio):
        return os.path.normpath(audio)
    in_folder = os.path.normpath(os.path.join(folder, audio))
    if not os.path.exists(in_folder) and os.path.exists(audio):
        return os.path.abspath(audio)
    return in_folder


def _looks_like_ark(entry: str) -> bool:
    """`foo.ark:1234` (Kaldi extended filename with a byte offset)."""
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and head.endswith(".ark")


def _exists(folder: str, name: str) -> bool:
    return os.path.isfile(os.path.join(folder, name))


def _is_kaldi_dir(folder: str) -> bool:
    return os.path.isdir(folder) and all(_exists(folder, name) for name in KALDI_FILES)


def _raise_not_a_dataset(path: str) -> NoReturn:
    if not os.path.exists(path):
        raise FileNotFoundError(f"data set {path!r} does not exist")
    present = [name for name in (*KALDI_FILES, "segments") if _exists(path, name)]
    hint = f" (found only {', '.join(present)})" if present else ""
    raise ValueError(
        f"{path!r} is not a data set: expected a .jsonl manifest file, or a folder with wav.scp and text "
        f"(Kaldi) or with {MANIFEST_NAME}{hint}"
    )
