"""ImageData sources: a list file of ``path label`` lines (the path is everything before the
last space, as Caffe splits it), each path read below ``root_folder``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from caffe_nantools.files import Outputs
from caffe_nantools.scan.backends import Backend, RecordIndex, register
from caffe_nantools.scan.checks import Collector, contract_problems
from caffe_nantools.scan.progress import Progress
from caffe_nantools.scan.report import ScanReport
from caffe_nantools.scan.source import ScanError, Source, shard_range
from caffe_nantools.scan.stores import need


@dataclass(frozen=True)
class ImageOptions:
    """The ImageData layer's settings that decide what a good image is."""

    root_folder: str = ""
    new_height: int = 0
    new_width: int = 0
    is_color: bool = True
    crop_size: int = 0


def read_list(path: str) -> Iterator[Tuple[int, str, Optional[str]]]:
    """(line number, image path as listed, label text or None) for each non-empty line."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                name, sep, label = line.rpartition(" ")
                yield (number, name, label) if sep else (number, line, None)
    except OSError as e:
        raise ScanError(f"{path}: cannot read the image list ({e.strerror or e})") from None


class ImageChecker:
    """Checks the lines of an image list one at a time and keeps the summary."""

    def __init__(self, collector: Collector, options: ImageOptions, expect) -> None:
        self.collector, self.options, self.expect = collector, options, expect
        self.reference = None

    def check(self, index: int, number: int, name: str, label_text: Optional[str]) -> bool:
        """Check one line; returns whether it is bad."""
        summary, options, expect = self.collector.summary, self.options, self.expect
        problems = []
        label = _label(label_text)
        if label_text is None:
            problems.append(
                ("label", "label", f"line {number} has no label (Caffe reads 'path label')")
            )
        elif label is None:
            problems.append(
                ("label", "label", f"line {number}: {label_text!r} is not an integer label")
            )
        elif label > INT32_MAX:
            problems.append(
                (
                    "label",
                    "label",
                    f"label {label} is past Caffe's int range ({INT32_MAX}): its atoi gives "
                    "another number, often a negative one",
                )
            )
        elif expect.contracts is not None:
            found = contract_problems(np.array([[label]]), expect.label_top, expect, self.collector)
            problems += [("label", problem, why) for _, problem, why in found]
            if not found:
                summary.labels[label] += 1
        elif label < 0:
            problems.append(("label", "label", f"label {label} is negative"))
        elif expect.num_classes is not None and label >= expect.num_classes:
            problems.append(
                ("label", "label", f"label {label} >= {expect.num_classes}, the number of classes")
            )
        else:
            summary.labels[label] += 1
        image_problem, size = _open_image(_path(options, name))
        if image_problem:
            problems.append(image_problem)
        elif not (options.new_height and options.new_width):
            self.reference = self.reference or size
            if size != self.reference and not options.crop_size:
                problems.append(
                    (
                        "image",
                        "shape",
                        f"{_size(size)}, not {_size(self.reference)} (the first image's); "
                        "Caffe needs one size per batch (set new_height/new_width)",
                    )
                )
        if size:
            summary.shapes[_size(size)] += 1
        for field_name, problem, detail in problems:
            self.collector.add(index, name, field_name, problem, detail)
        summary.records += 1
        return bool(problems)


def scan_imagelist(
    source: Source,
    report: ScanReport,
    *,
    limit=None,
    max_findings=None,
    shard=None,
    progress=False,
    one_core: bool = False,
) -> Set[int]:
    """Scan an ImageData list into ``report``; returns the bad record indices (one core
    always)."""
    checker = ImageChecker(
        Collector(report, source.name, "imagelist", max_findings),
        source.options or ImageOptions(),
        source.expect,
    )
    entries = list(read_list(source.path))
    first, end = shard_range(len(entries), shard, limit)
    # A shard compares sizes with the list's first image that opens, not with its own first.
    checker.reference = _first_size(entries[:first], checker.options)
    bad: Set[int] = set()
    bar = Progress(os.path.basename(source.path), end - first, progress)
    try:
        for index in range(first, end):
            if checker.check(index, *entries[index]):
                bad.add(index)
            bar.update(1)
    finally:
        bar.close()
    return bad


INT32_MAX = 2**31 - 1


def _label(text: Optional[str]) -> Optional[int]:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _size(size) -> str:
    width, height, channels = size
    return f"{channels}x{height}x{width}"


def _first_size(entries, options: ImageOptions) -> Optional[Tuple[int, int, int]]:
    """The size of the first image of ``entries`` that opens."""
    for _, name, _ in entries:
        size = _open_image(_path(options, name))[1]
        if size:
            return size
    return None


def _path(options: ImageOptions, name: str) -> str:
    return os.path.join(options.root_folder, name) if options.root_folder else name


def _open_image(path: str):
    """(problem or None, (width, height, channels) or None)."""
    if not os.path.exists(path):
        return ("image", "missing", f"{path}: no such file"), None
    if not os.path.isfile(path):  # a FIFO would block the scan forever, a folder cannot decode
        return ("image", "not_file", f"{path}: not a regular file"), None
    Image = need("PIL.Image")
    try:
        with Image.open(path) as img:
            img.load()
            channels = len(img.getbands())
            return None, (img.width, img.height, channels)
    except OSError as e:
        return ("image", "decode", f"{path}: does not decode ({e})"), None
    except Exception as e:  # PIL raises many kinds for a broken file
        return ("image", "decode", f"{path}: does not decode ({type(e).__name__}: {e})"), None


def write_clean_imagelist(source: Source, bad: Set[int], target: str, out: Outputs) -> int:
    """Write the list without the bad lines (the images themselves are not copied), each
    line's label as the source's transform makes it."""
    transform = source.transform
    if transform is not None and transform.argmax:
        raise ScanError(f"{source.path}: an image list holds one label a line, not one-hot rows")
    kept = 0
    with open(source.path, encoding="utf-8", errors="surrogateescape") as f, open(
        out.path(target, new=True), "w", encoding="utf-8", errors="surrogateescape"
    ) as copy:
        index = 0
        for line in f:
            if not line.strip():
                continue
            if index not in bad:
                copy.write(line if transform is None else _relabelled(line, transform))
                kept += 1
            index += 1
    return kept


def _relabelled(line: str, transform) -> str:
    name, label = line.rstrip("\r\n").rsplit(None, 1)
    return f"{name} {transform.label(int(label))}\n"


def subset_imagelist(source: Source, indices: List[int], path: str) -> None:
    keep = set(indices)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
        for i, (_, name, label) in enumerate(read_list(source.path)):
            if i in keep:
                out.write(f"{name} {label}\n" if label is not None else f"{name}\n")


def recheck_imagelist(source: Source, indices: List[int], collector: Collector) -> None:
    entries = list(read_list(source.path))
    checker = ImageChecker(collector, source.options or ImageOptions(), source.expect)
    for i in indices:
        checker.check(i, *entries[i])


class LineIndex(RecordIndex):
    """The list's lines, named by their image path."""

    def __init__(self, source: Source) -> None:
        self.names = [name for _, name, _ in read_list(source.path)]
        self.count = len(self.names)

    def keys(self, indices: Sequence[int]) -> Dict[int, str]:
        return {i: self.names[i] for i in indices if i < len(self.names)}


register(
    Backend(
        "imagelist",
        scan=scan_imagelist,
        write_clean=write_clean_imagelist,
        index=LineIndex,
        recheck=recheck_imagelist,
        subset=subset_imagelist,
    )
)
