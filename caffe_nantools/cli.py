"""The ``caffe-nantools`` command: option parsing and printing over the library functions.

Every subcommand calls one library function with the same options and renders the report it
returns. Each command's options stand beside what it runs (``add_hunt`` next to ``_hunt``);
options that several commands share (``--json``, the edit outputs) are defined once. Errors the
library raises on purpose (NanToolsError) become one line on stderr and exit 2, naming the
library's arguments as this command's flags.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Callable, Dict, List, Optional

from caffe_nantools import __version__
from caffe_nantools.errors import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    NanToolsError,
    python_spelling,
)

Handler = Callable[[argparse.Namespace], int]


# -- what several commands share ------------------------------------------------------------------


class _Command:
    """A subcommand's parser, which keeps the flag that sets each library argument (the options'
    dests are the library's argument names), so that the library's errors about an argument
    are said in this command's terms (``--workers 2``, ``--in-place``, ``--shard 0/4``)."""

    def __init__(self, commands, name: str, run: Handler, **texts: str) -> None:
        self.parser = commands.add_parser(name, **texts)
        self.parser.set_defaults(run=run, spelling=self.spell)
        self._flags: Dict[str, Optional[str]] = {}
        self._metavars: Dict[str, str] = {}

    def add(self, *flags: str, to=None, **options) -> argparse.Action:
        """An option (or positional argument) of this command, in the group ``to`` if given."""
        action = (to or self.parser).add_argument(*flags, **options)
        self._flags[action.dest] = max(action.option_strings, key=len, default=None)
        self._metavars[action.dest] = (action.metavar or action.dest.upper()).strip("-. ")
        return action

    def spell(self, name: str, value: object) -> str:
        """``name=value`` as this command's flag; an argument the command has no option for
        (one it passed to another library call) as Python says it."""
        if name not in self._flags:
            return python_spelling(name, value)
        flag = self._flags[name]
        if flag is None:  # a positional argument: what was typed, or its placeholder
            return self._metavars[name] if value is ... else str(value)
        if value is ... or value is True:
            return flag
        if isinstance(value, tuple):
            value = "/".join(str(v) for v in value)  # --shard K/N
        return f"{flag} {value}"


def _json(command: _Command, what: str = "the report") -> None:
    command.add("--json", action="store_true", help=f"{what} as JSON")


def _json_or_csv(command: _Command) -> None:
    formats = command.parser.add_mutually_exclusive_group()
    command.add("--json", action="store_true", help="the report as JSON", to=formats)
    command.add("--csv", action="store_true", help="the findings as CSV", to=formats)


def _edit_outputs(command: _Command, output_help: str) -> None:
    command.add("-o", "--output", metavar="OUT", help=output_help)
    command.add("--in-place", action="store_true", help="edit the input file itself")
    command.add("--dry-run", action="store_true", help="print a unified diff and write nothing")


def _report(command: _Command) -> None:
    command.add(
        "--report",
        metavar="FILE",
        help="also write the report to FILE: .html (one self-contained page with the plots) or "
        ".md (Markdown for an issue thread)",
    )
    command.add(
        "--redact",
        action="store_true",
        help="in the --report, replace your home and working folders and host name with placeholders",
    )


def _check_report(args: argparse.Namespace) -> None:
    """A --report that cannot be written stops the command before it runs, not after."""
    from caffe_nantools import report

    if args.report:
        report.check(args.report)


def _write_report(result, args: argparse.Namespace, command: str) -> None:
    if args.report:
        from caffe_nantools import report

        _warn(command, f"report: {report.write(result, args.report, redact=args.redact)}")


def _positive_int(text: str) -> int:
    # A word is refused here too: argparse would name the function in its own message.
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number > 0")
    return value


def _warn(command: str, message: str) -> None:
    print(f"caffe-nantools {command}: {message}", file=sys.stderr, flush=True)


def _print(report, args: argparse.Namespace) -> int:
    """The report as JSON or as text on stdout; its return code is the exit status."""
    sys.stdout.write(report.to_json() if args.json else report.format())
    return report.return_code


def _print_edits(report, args: argparse.Namespace, command: str) -> int:
    """inject's and remove's report: with --dry-run the diff on stdout (a clean patch) and the
    summary on stderr; the notes on stderr."""
    if args.dry_run:
        sys.stdout.write(report.diff())
    (sys.stderr if args.dry_run else sys.stdout).write(report.format())
    for message in report.messages():
        _warn(command, message)
    return report.return_code


# -- the commands: each one's options, then what it runs --------------------------------------


def add_demo(commands) -> None:
    _Command(
        commands,
        "demo",
        _demo,
        help="hunt a NaN planted in a small dataset: the record, the layer, a verified fix (needs pycaffe)",
        description="Write a small LMDB with a NaN planted in one record, a classifier and its solver into a "
        "temporary folder, run hunt on them and show its verdict: the record's key, the layer, and the fix "
        "it verified.",
    )


def _demo(args: argparse.Namespace) -> int:
    from caffe_nantools import demo

    result = demo.run(progress=sys.stderr.isatty())
    print(
        f"The demo planted a NaN in record {result.key} of {demo.SOURCE} ({demo.RECORDS} records, batch "
        f"{demo.BATCH}) in {result.folder} and ran `caffe-nantools hunt solver.prototxt` there:\n"
    )
    sys.stdout.write(result.report.format())
    if not result.found:
        print(
            "\nhunt did not name the planted record with a verified fix: this is a bug in caffe-nantools."
        )
        return EXIT_FINDINGS
    return EXIT_OK


def add_hunt(commands) -> None:
    hunt = _Command(
        commands,
        "hunt",
        _hunt,
        help="find why a training goes NaN: lint, scan, a checked training, one verdict and a verified fix",
        description="Lint the solver and its train net, scan the TRAIN data, train checked copies (a check after "
        "every blob, debug_info every iteration) for a bounded number of iterations, and say what went "
        "non-finite first, where and why: the cause, the layer, blob, pass and iteration, the bad record; then "
        "try the fix on hunt's copies and train again to show that it works. Your files are never changed. "
        "Exit 0 when the run stayed finite and the data is clean, 1 when something was found, 2 on bad input.",
    )
    hunt.add("solver", metavar="SOLVER", help="the solver prototxt you train with")
    hunt.add(
        "--iters",
        type=_positive_int,
        metavar="N",
        help="iterations to train (default: max_iter, at most 1000)",
    )
    hunt.add(
        "--workdir",
        metavar="DIR",
        help="a new folder for hunt's copies, logs and replay bundle "
        "(default nantools-hunt-YYYYmmdd-HHMMSS)",
    )
    hunt.add("--gpu", type=int, metavar="ID", help="train on this GPU (default: CPU)")
    hunt.add(
        "--no-scan", dest="scan", action="store_false", help="do not scan the data sources first"
    )
    hunt.add("--no-verify", dest="verify", action="store_false", help="do not try the fix")
    hunt.add(
        "--snapshot",
        metavar="FILE.solverstate",
        help="start from this snapshot, as caffe train -snapshot does (the data layers advanced "
        "to the batches the run read there); --iters counts from it",
    )
    _json(hunt)
    _report(hunt)


def _hunt(args: argparse.Namespace) -> int:
    from caffe_nantools.hunt import hunt

    _check_report(args)
    report = hunt(
        args.solver,
        iters=args.iters,
        workdir=args.workdir,
        gpu=args.gpu,
        scan=args.scan,
        verify=args.verify,
        progress=sys.stderr.isatty(),
        snapshot=args.snapshot,
    )
    if args.report:
        _replay_failing(report, args.gpu)
    _write_report(report, args, "hunt")
    return _print(report, args)


def _replay_failing(report, gpu: Optional[int]) -> None:
    """The report's table of the failing iteration: its bundle replayed (a few seconds)."""
    from caffe_nantools.replay import replay

    bundle = report.training.replay if report.training is not None else None
    if bundle is None or not os.path.isdir(bundle):
        return
    if report.reproducible is not None and report.reproducible.replay is not None:
        report.replayed = report.reproducible.replay  # replayed already, to compare
        return
    try:
        report.replayed = replay(bundle, gpu=gpu)
    except NanToolsError as e:
        report.notes.append(f"the replay of the failing iteration for the report failed: {e}")


def add_replay(commands) -> None:
    replay = _Command(
        commands,
        "replay",
        _replay,
        help="run a hunt's failing iteration again and show every blob's numbers",
        description="Run the iteration in a replay bundle (WORKDIR/replay of a hunt) forward and backward, layer "
        "by layer, from the weights it started with and the batch it read, and print for every blob and param "
        "NaN/+inf/-inf counts, min, max and mean |x|, the first bad one marked. Exit 0 when all stay finite, 1 "
        "otherwise, 2 on bad input.",
    )
    replay.add(
        "bundle", metavar="BUNDLE", help="a replay folder written by hunt, or that hunt's workdir"
    )
    replay.add("--gpu", type=int, metavar="ID", help="run on this GPU (default: CPU)")
    _json(replay, "the numbers")


def _replay(args: argparse.Namespace) -> int:
    from caffe_nantools.replay import replay

    return _print(replay(args.bundle, gpu=args.gpu), args)


def add_inject(commands) -> None:
    from caffe_nantools.checking import ACTIONS  # the values the layer takes

    inject = _Command(
        commands,
        "inject",
        _inject,
        help="add CheckFiniteLayers after chosen blobs of a net, debug_info to its solver",
        description="Insert a CheckFiniteLayer after each chosen blob of a net (after the "
        "blob's last in-place modifier, under the rules of the layers that make it), in the "
        "file's own style; nothing else in the file changes. With --solver, also switch on "
        "debug_info there. A solver whose nets are inline (net_param) gets the checks in each "
        "net and debug_info in the same file. `caffe-nantools remove` takes it all out again.",
    )
    inject.add(
        "net",
        metavar="NET",
        help="the net prototxt (e.g. train_val.prototxt), or a solver with inline nets",
    )
    _edit_outputs(inject, "where the checked net goes")
    inject.add(
        "--blobs",
        nargs="+",
        action="extend",
        metavar="SPEC",
        help="which blobs to check: names, globs (conv*), re:REGEX, type:Convolution, "
        "all (the default), loss (bottoms of loss layers), data (tops of data layers)",
    )
    inject.add(
        "--each",
        action="store_true",
        help="also check between a producer and each in-place modifier",
    )
    inject.add("--on", choices=ACTIONS, help="what the layers do on a bad blob (default raise)")
    inject.add(
        "--max-abs", type=_positive_float, metavar="X", help="also act on finite values beyond X"
    )
    inject.add("--every", type=_positive_int, metavar="N", help="check every N-th pass only")
    inject.add(
        "--upgrade",
        action="store_true",
        help="rewrite an old V1 net (layers {} with enum types) in today's format first",
    )
    inject.add("--solver", metavar="SOLVER", help="a solver prototxt to switch debug_info on in")
    inject.add(
        "--solver-out", dest="solver_output", metavar="OUT", help="where the edited solver goes"
    )
    inject.add(
        "--net-path", metavar="PATH", help="point the solver's net: at PATH (e.g. the checked net)"
    )
    inject.add(
        "--display",
        type=int,
        metavar="N",
        help="set the solver's display interval (debug_info prints only then)",
    )


def _inject(args: argparse.Namespace) -> int:
    from caffe_nantools.inject import inject

    report = inject(
        args.net,
        args.output,
        blobs=args.blobs or ["all"],
        each=args.each,
        on=args.on,
        max_abs=args.max_abs,
        every=args.every,
        solver=args.solver,
        solver_output=args.solver_output,
        net_path=args.net_path,
        display=args.display,
        in_place=args.in_place,
        dry_run=args.dry_run,
        upgrade=args.upgrade,
    )
    return _print_edits(report, args, "inject")


def add_remove(commands) -> None:
    remove = _Command(
        commands,
        "remove",
        _remove,
        help="take out what inject added (nets and solvers)",
        description="Remove the check layers and solver lines that inject added and restore "
        "the values it changed: the file comes back byte for byte.",
    )
    remove.add("paths", nargs="+", metavar="FILE", help="checked nets and solvers")
    _edit_outputs(remove, "where the result goes (one input file)")


def _remove(args: argparse.Namespace) -> int:
    from caffe_nantools.inject import remove

    report = remove(args.paths, args.output, in_place=args.in_place, dry_run=args.dry_run)
    return _print_edits(report, args, "remove")


def add_scan(commands) -> None:
    scan = _Command(
        commands,
        "scan",
        _scan,
        help="find every bad sample of an LMDB, LevelDB, HDF5 or ImageData source",
        description="Read every record of a data source and name each bad one by its key or "
        "row: NaN/inf values, undecodable images, records that are not Datums, wrong shapes, "
        "bad labels. Exit 0 clean, 1 bad records found, 2 usage or I/O error.",
    )
    _scan_sources(scan)
    _scan_reading(scan)
    _json_or_csv(scan)


def _scan_sources(scan: _Command) -> None:
    """What scan reads: a source, or the data layers of a net (its phase, one layer), and by
    whose code (its own readers or Caffe's)."""
    # The allowed values come from the library, which checks them too.
    from caffe_nantools.prototxt import PHASES
    from caffe_nantools.scan.backends import backend_names
    from caffe_nantools.scan.scanner import MODES

    scan.add(
        "target",
        metavar="PATH",
        help="a net prototxt (its data layers), or an LMDB or LevelDB folder, an HDF5 file or list, an ImageData list",
    )
    scan.add(
        "--phase",
        choices=PHASES,
        default="TRAIN",
        help="which data layers of a net (default TRAIN)",
    )
    scan.add(
        "--layer",
        metavar="NAME",
        help="only this data layer of a net (for --write-clean of one source of several)",
    )
    scan.add(
        "--mode",
        choices=MODES,
        default="direct",
        help="direct: read the stores here (default); net: have Caffe read the net's data layers (needs pycaffe)",
    )
    scan.add(
        "--backend", choices=backend_names(), help="the source's kind (detected when not given)"
    )


def _scan_reading(scan: _Command) -> None:
    """How much of the sources scan reads, in how many processes, and what it writes."""
    scan.add("--limit", type=_positive_int, metavar="N", help="scan the first N records only")
    scan.add(
        "--max-findings",
        type=_positive_int,
        metavar="N",
        help="list at most N findings (the rest are counted)",
    )
    scan.add(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="scan in N processes of one core each (default: one per core it may use, within a "
        "CPU quota, for an LMDB of 64 MB a core or more, or an HDF5 source of 256 MB a core)",
    )
    scan.add(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="scan only slice K of N (0-based); join the --json reports with merge",
    )
    scan.add(
        "--write-clean",
        metavar="OUT",
        help="copy the source to OUT without the bad records (same backend)",
    )
    scan.add("-q", "--quiet", action="store_true", help="no progress bar")


def _shard(text: str):
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (e.g. 0/4)") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"{text}: K must be 0..N-1")
    return k, n


def _scan(args: argparse.Namespace) -> int:
    from caffe_nantools.scan import scan

    report = scan(
        args.target,
        backend=args.backend,
        phase=args.phase,
        layer=args.layer,
        mode=args.mode,
        limit=args.limit,
        max_findings=args.max_findings,
        shard=args.shard,
        workers=args.workers,
        write_clean=args.write_clean,
        progress=sys.stderr.isatty() and not args.quiet,
    )
    return _print_table(report, args)


def _print_table(report, args: argparse.Namespace) -> int:
    """A scan report as JSON, CSV or a table."""
    if args.json:
        sys.stdout.write(report.to_json())
    elif args.csv:
        sys.stdout.write(report.to_csv())
    else:
        sys.stdout.write(report.format_table())
    return report.return_code


def add_merge(commands) -> None:
    merge = _Command(
        commands,
        "merge",
        _merge,
        help="join the --json reports of scan shards into one report",
        description="Join scan reports (made with --json, e.g. one per --shard) into one.",
    )
    merge.add("reports", nargs="+", metavar="REPORT.json")
    _json_or_csv(merge)


def _merge(args: argparse.Namespace) -> int:
    from caffe_nantools.scan import merge_files

    return _print_table(merge_files(args.reports), args)


def add_log2csv(commands) -> None:
    log2csv = _Command(
        commands,
        "log2csv",
        _log2csv,
        help="train and test tables of a Caffe log, as CSV (parse_log.py for Python 3)",
        description="Write LOG.train.csv and LOG.test.csv to OUTDIR: NumIters, Seconds, "
        "LearningRate and every output, a row per displayed iteration and per test pass. Unlike "
        "Caffe's parse_log.py, runs on Python 3, keeps rows with nan/-nan/inf values, and numbers "
        "the runs of a log that holds several.",
    )
    log2csv.add("log", metavar="LOG", help="a Caffe training log (glog format)")
    log2csv.add("outdir", metavar="OUTDIR", help="where the CSV files go (made if missing)")
    log2csv.add("--force", action="store_true", help="overwrite existing CSV files")


def _log2csv(args: argparse.Namespace) -> int:
    from caffe_nantools.logs import log2csv

    train, test, tables = log2csv(args.log, args.outdir, force=args.force)
    print(f"{train}: {len(tables.train)} rows; {test}: {len(tables.test)} rows")
    return EXIT_OK


def add_diagnose(commands) -> None:
    diagnose = _Command(
        commands,
        "diagnose",
        _diagnose,
        help="read a Caffe training log and name the cause of the NaN",
        description="Find the first non-finite loss, learning rate or debug_info value of a Caffe "
        "log, where it came from (layer, blob, forward/backward/update) and whether values blew up "
        "before it; name the most likely cause (bad_input, exploding_gradients, lr_policy, "
        "layer_numerics, unknown, none) with the log lines that show it and what to change. Exit 0 "
        "when nothing went non-finite, 1 when something did, 2 usage or I/O error.",
    )
    diagnose.add("log", metavar="LOG", help="a Caffe training log (glog format), any size")
    diagnose.add(
        "--net", metavar="NET", help="the train_val prototxt: layer types, data layers, lint"
    )
    diagnose.add(
        "--solver", metavar="SOLVER", help="the solver prototxt: lr_policy, base_lr, clipping"
    )
    diagnose.add(
        "--plot", metavar="PNG", help="draw the trace: mean |x| per layer and iteration, loss, lr"
    )
    _json(diagnose, "the diagnosis")
    _report(diagnose)


def _diagnose(args: argparse.Namespace) -> int:
    from caffe_nantools.diagnose import diagnose

    _check_report(args)
    result = diagnose(
        args.log, net=args.net, solver=args.solver, plot=args.plot, keep_trace=bool(args.report)
    )
    _write_report(result, args, "diagnose")
    print(result.to_json() if args.json else result.format(), end="\n" if args.json else "")
    if args.plot and not args.json:
        print(f"plot: {args.plot}")
    return result.return_code


def add_lint(commands) -> None:
    lint = _Command(
        commands,
        "lint",
        _lint,
        help="check a net and a solver for known causes of NaN",
        description="Static checks, each with a rule id, severity, file:line:col, the reason and "
        "the fix: learning-rate policies that compute NaN, a base_lr far too high, Pooling "
        "windows past the input, BatchNorm eps, log of values <= 0, missing weight fillers, raw "
        "input, unimportable Python layers, a display that hides debug_info. Exit 0 without "
        "errors, 1 with errors, 2 usage or parse error.",
    )
    lint.add("paths", nargs="+", metavar="FILE", help="net and solver prototxts (each is linted)")
    _json(lint, "the findings")


def _lint(args: argparse.Namespace) -> int:
    from caffe_nantools.lint import lint_files

    return _print(lint_files(args.paths), args)


def add_watch(commands) -> None:
    watch = _Command(
        commands,
        "watch",
        _watch,
        help="run caffe train, pass its output through, stop it at the first NaN keeping a snapshot",
        description="Run COMMAND (caffe train ..., a pycaffe script, mpirun ...) with GLOG_logtostderr=1 "
        "(unless glog's variables say where its lines go), pass its output through as it comes and keep it in "
        "a log. At the first non-finite loss, output, lr or debug_info value, ask Caffe for a snapshot and stop "
        "it with its own signals (-sighup_effect / -sigint_effect, read from COMMAND; SIGTERM, then SIGKILL "
        "after --timeout), then print the diagnosis of the log (as diagnose), the snapshot and the last finite "
        "one. Warns early of values blowing up, a loss pinned at 87.3365 and display > 1 with debug_info. "
        "Ctrl-C, SIGTERM and SIGHUP are passed on to COMMAND. Exit: COMMAND's own status when every value was "
        "finite (128+N when killed by signal N), 1 when a value went non-finite, 2 usage error; with --resume, the "
        "resumed training's.",
    )
    watch.add(
        "--log",
        metavar="FILE",
        help="where the output is kept (a new file; default caffe-train-YYYYmmdd-HHMMSS.log here)",
    )
    watch.add(
        "--stop-on-blowup",
        action="store_true",
        help="also stop when values grow by orders of magnitude",
    )
    watch.add(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="stop without a snapshot (SIGTERM: Caffe's own stop would write one)",
    )
    watch.add(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for the snapshot and after each signal before a stronger one (default 60)",
    )
    _watch_recovery(watch)
    _json(watch, "the outcome and the diagnosis")
    _report(watch)
    watch.add(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="the command to run"
    )


def _watch_recovery(watch: _Command) -> None:
    """watch's options for getting the run back: a finite snapshot kept, a hunt from it, the
    resumed training."""
    watch.add(
        "--keep-good",
        type=_seconds,
        metavar="SECONDS",
        help="for caffe train: ask Caffe for a snapshot every SECONDS of training (its snapshot signal), keep "
        "the newest two whose values are all finite, remove watch's older ones (default: every 30 minutes; "
        "0: never)",
    )
    watch.add(
        "--hunt",
        action="store_true",
        help="for caffe train -solver S: once a value went non-finite, run hunt S from the last finite snapshot "
        "over the iterations up to the failing one (and 10 more), print its verdict and the command that resumes "
        "your training from that snapshot with the fix it verified (or, in one line, why no hunt ran and the "
        "hunt command to run)",
    )
    watch.add(
        "--resume",
        action="store_true",
        help="with --hunt: run that resume command under watch in turn, with the same options, once (its log: "
        "--log's name with -resume); the exit status is then the resumed training's",
    )


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds, 0 or more")
    return value


def _watch(args: argparse.Namespace) -> int:
    from caffe_nantools.watch import watch

    def report(event) -> None:
        if event.kind == "warning":
            _warn("watch", f"warning: {event.message}")
        elif event.kind != "snapshot" and not (event.kind == "keep" and event.signal):
            _warn("watch", event.message)

    _check_report(args)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    result = watch(
        command,
        log=args.log,
        stop_on_blowup=args.stop_on_blowup,
        snapshot=args.snapshot,
        on_event=report,
        timeout=args.timeout,
        **({} if args.keep_good is None else {"keep_good": args.keep_good}),
        hunt=args.hunt,
        resume=args.resume,
        keep_trace=args.report is not None,
    )
    _write_report(result, args, "watch")
    if args.json:
        print(result.to_json())
    elif result.worth_a_diagnosis:
        sys.stdout.write(result.format())
    else:
        _warn("watch", result.summary())
    return result.exit_status


#: Each command's ``add_...``, in the order ``--help`` lists them.
COMMANDS = (
    add_demo,
    add_hunt,
    add_replay,
    add_inject,
    add_remove,
    add_scan,
    add_merge,
    add_log2csv,
    add_diagnose,
    add_lint,
    add_watch,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caffe-nantools",
        description="Find out why Caffe training says loss = nan.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the command is, so that it ends as on Ctrl-C: outputs
    half-written are removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame) -> None:
    raise _Terminated(signum)


def _interrupt(signum: int, frame) -> None:
    """Ctrl-C, raised where the command is; but not inside an object's finalizer, where Python
    would only print it and go on (a scan once ran to its end so): the signal comes again a
    moment later, where it can stop the command."""
    if frame is not None and frame.f_code.co_name == "__del__":
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    raise KeyboardInterrupt


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.subcommand is None:
        parser.print_help()
        return EXIT_ERROR
    stops = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    in_main_thread = (
        threading.current_thread() is threading.main_thread()
    )  # else Python refuses handlers
    previous = {s: signal.signal(s, _raise_terminated) for s in stops} if in_main_thread else {}
    if in_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)  # not when ignored
    try:
        return args.run(args)
    except NanToolsError as e:
        print(
            f"caffe-nantools {args.subcommand}: error: {e.spelled(args.spelling)}", file=sys.stderr
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            f"caffe-nantools {args.subcommand}: interrupted; no output was left half-written",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT
    except _Terminated as stop:
        print(
            f"caffe-nantools {args.subcommand}: stopped by {signal.Signals(stop.signum).name}; no output was left half-written",
            file=sys.stderr,
        )
        return 128 + stop.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
